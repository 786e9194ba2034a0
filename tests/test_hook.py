from __future__ import annotations

import json
import logging
import threading
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Retries, TimeLimit

from hybiscus_webhooks import RenderHook, install, report_completed, report_failed
from hybiscus_webhooks.testing import Receiver

SECRET = "tok_0a1b2c3d4e5f"
QUEUE = "hybiscus_webhooks"


def report(*urls: str, auth_header: str | None = SECRET) -> dict[str, Any]:
    return {"type": "Report", "options": {"report_title": "Sales"},
            "config": {"webhooks": [{"url": url, "auth_header": auth_header} for url in urls]}, "components": []}


def queued(broker: StubBroker) -> list[dramatiq.Message[Any]]:
    queue = broker.queues.get(QUEUE)
    return [dramatiq.Message.decode(raw) for raw in list(queue.queue)] if queue else []


class TestHookFunctions:
    def test_one_message_per_webhook(self, stub_broker: StubBroker) -> None:
        ids = report_completed("task-1", report("https://a.example/1", "https://b.example/2"), broker=stub_broker)
        messages = queued(stub_broker)
        assert [message.args[0]["id"] for message in messages] == ids
        assert [message.args[0]["event"] for message in messages] == ["report.completed"] * 2
        assert [message.args[0]["endpoint"] for message in messages] == ["https://a.example/1", "https://b.example/2"]

    def test_report_failed_and_json_text(self, stub_broker: StubBroker) -> None:
        report_failed("task-2", json.dumps(report("https://a.example/1")), broker=stub_broker)
        report_failed("task-3", json.dumps(report("https://a.example/1")).encode(), broker=stub_broker)
        assert [message.args[0]["event"] for message in queued(stub_broker)] == ["report.failed"] * 2

    @pytest.mark.parametrize("bad", [
        report("ftp://a.example/1"),
        report(*["https://a.example/%d" % n for n in range(4)]),
        report("https://a.example/1", auth_header="bad\r\nheader " + SECRET),
        "not json {",
        b"[" * 50_000,
        {"config": {"webhooks": "https://a.example/1"}},
    ])
    def test_invalid_webhooks_send_nothing_and_log_one_line_without_secrets(
        self, stub_broker: StubBroker, caplog: pytest.LogCaptureFixture, bad: Any
    ) -> None:
        caplog.set_level(logging.DEBUG)
        assert report_completed("task-4", bad, broker=stub_broker) == []
        assert queued(stub_broker) == []
        [record] = [record for record in caplog.records if record.name.startswith("hybiscus_webhooks")]
        assert record.levelno == logging.WARNING
        assert "task-4" in record.getMessage()
        assert SECRET not in caplog.text

    @pytest.mark.parametrize("none", [{}, {"config": {}}, {"config": {"webhooks": []}}, [], 5])
    def test_no_webhooks_send_nothing(self, stub_broker: StubBroker, none: Any) -> None:
        assert report_completed("task-5", none, broker=stub_broker) == []
        assert queued(stub_broker) == []

    def test_a_broker_that_cannot_be_reached_is_an_error_the_caller_sees(self) -> None:
        class Unreachable(StubBroker):
            def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
                raise ConnectionError("broker down")

        with pytest.raises(ConnectionError):
            report_completed("task-6", report("https://a.example/1"), broker=Unreachable())

    @pytest.mark.parametrize("task_id", [None, "", 5])
    def test_a_bad_task_id_is_the_callers_error(self, stub_broker: StubBroker, task_id: Any) -> None:
        with pytest.raises(ValueError, match="task_id"):
            report_completed(task_id, report("https://a.example/1"), broker=stub_broker)


class RenderFailed(Exception):
    pass


def render_broker(hook: RenderHook) -> StubBroker:
    broker = StubBroker()
    broker.add_middleware(hook)
    broker.emit_after("process_boot")
    install(broker)
    return broker


def test_render_hook_sends_completed_after_success(start_worker: Any, receiver: Receiver) -> None:
    broker = render_broker(RenderHook(actor_name="render_report"))
    renders = []

    @dramatiq.actor(broker=broker, queue_name="render")
    def render_report(task_id: str, report: dict[str, Any]) -> None:
        renders.append(task_id)

    render_report.send("task-7", report(receiver.url + "/a", receiver.url + "/b"))
    start_worker(broker)
    requests = receiver.wait_for(2)
    broker.join("render", fail_fast=False)
    broker.join(QUEUE, fail_fast=False)
    assert renders == ["task-7"]
    assert sorted(request.path for request in requests) == ["/a", "/b"]
    assert {json.loads(request.body)["event"] for request in requests} == {"report.completed"}
    assert len(receiver.requests) == 2


def test_render_hook_sends_failed_only_after_the_last_retry(
    start_worker: Any, receiver: Receiver, enqueued: Any, clock: Any
) -> None:
    broker = render_broker(RenderHook(actor_name="render_report"))
    broker.add_middleware(enqueued)
    attempts = []

    @dramatiq.actor(broker=broker, queue_name="render", max_retries=2, min_backoff=1000, max_backoff=1000)
    def render_report(task_id: str, report: dict[str, Any]) -> None:
        attempts.append(task_id)
        raise RenderFailed("unknown component")

    render_report.send(task_id="task-8", report=report(receiver.url + "/a"))
    start_worker(broker)
    for retry in (1, 2):
        clock.now = enqueued.wait_for_eta(retry) / 1000 + 1
        # Nothing is sent while a retry is pending: only render messages were delayed so far.
        assert receiver.requests == []
    [request] = receiver.wait_for(1)
    broker.join("render", fail_fast=False)
    broker.join(QUEUE, fail_fast=False)
    assert attempts == ["task-8"] * 3
    assert json.loads(request.body) == {
        "event": "report.failed", "task_id": "task-8",
        "url": "https://reports.example.com/api/v1/get-report?task_id=task-8",
    }
    assert len(receiver.requests) == 1


def test_render_hook_sends_failed_at_once_for_a_throws_exception(start_worker: Any, receiver: Receiver) -> None:
    broker = render_broker(RenderHook(actor_name="render_report"))

    @dramatiq.actor(broker=broker, queue_name="render", throws=(RenderFailed,))
    def render_report(task_id: str, report: dict[str, Any]) -> None:
        raise RenderFailed("unknown component")

    render_report.send("task-9", report(receiver.url + "/a"))
    start_worker(broker)
    [request] = receiver.wait_for(1)
    assert json.loads(request.body)["event"] == "report.failed"


def test_render_hook_sends_failed_after_a_time_limit_with_no_retries_left(
    start_worker: Any, receiver: Receiver
) -> None:
    broker = StubBroker(middleware=[Retries(max_retries=0), TimeLimit(interval=10)])
    broker.add_middleware(RenderHook(actor_name="render_report"))
    broker.emit_after("process_boot")
    install(broker)
    never = threading.Event()

    @dramatiq.actor(broker=broker, queue_name="render", time_limit=50)
    def render_report(task_id: str, report: dict[str, Any]) -> None:
        for _ in range(3000):  # A render that outlives its limit; short waits let TimeLimit interrupt it.
            never.wait(0.01)

    render_report.send("task-10", report(receiver.url + "/a"))
    start_worker(broker)
    [request] = receiver.wait_for(1, timeout=20)
    assert json.loads(request.body)["event"] == "report.failed"


def test_render_hook_ignores_other_actors(start_worker: Any, receiver: Receiver) -> None:
    broker = render_broker(RenderHook(actor_name="render_report"))

    @dramatiq.actor(broker=broker, queue_name="render")
    def render_report(task_id: str, report: dict[str, Any]) -> None:
        pass

    @dramatiq.actor(broker=broker, queue_name="render")
    def something_else(task_id: str, report: dict[str, Any]) -> None:
        pass

    something_else.send("task-11", report(receiver.url + "/other"))
    render_report.send("task-12", report(receiver.url + "/render"))
    start_worker(broker)
    broker.join("render", fail_fast=False)
    broker.join(QUEUE, fail_fast=False)
    assert [request.path for request in receiver.requests] == ["/render"]


def test_render_hook_with_other_argument_names_and_an_extractor(start_worker: Any, receiver: Receiver) -> None:
    broker = render_broker(RenderHook(actor_name="build", task_id_arg="job", report_arg="definition"))
    other = RenderHook(actor_name="build_json", extract=lambda message: (message.args[0]["id"], message.args[0]["doc"]))
    broker.add_middleware(other)

    @dramatiq.actor(broker=broker, queue_name="render")
    def build(definition: dict[str, Any], job: str) -> None:
        pass

    @dramatiq.actor(broker=broker, queue_name="render")
    def build_json(payload: dict[str, Any]) -> None:
        pass

    build.send(report(receiver.url + "/named"), "job-1")
    build_json.send({"id": "job-2", "doc": report(receiver.url + "/extracted")})
    start_worker(broker)
    requests = receiver.wait_for(2)
    assert sorted((request.path, json.loads(request.body)["task_id"]) for request in requests) == [
        ("/extracted", "job-2"), ("/named", "job-1"),
    ]


def test_render_hook_logs_when_the_arguments_are_missing(
    start_worker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    broker = render_broker(RenderHook(actor_name="render_report"))

    @dramatiq.actor(broker=broker, queue_name="render")
    def render_report(*args: Any) -> None:
        pass

    render_report.send("only-one")
    start_worker(broker)
    broker.join("render", fail_fast=False)
    assert any("task_id and report were not found" in record.getMessage() for record in caplog.records)
