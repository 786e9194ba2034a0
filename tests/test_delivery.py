from __future__ import annotations

import itertools
import json
import logging
import socket
import subprocess
import sys
from typing import Any

import dramatiq
import dramatiq.broker
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AgeLimit, CurrentMessage, Retries

from hybiscus_webhooks import BrokerNotConfigured, ImproperlyConfigured, Webhook, __version__, install, report_completed
from hybiscus_webhooks.delivery import (
    ACTOR_NAME,
    COMPLETED,
    FAILED,
    MAX_RETRIES,
    backoff_millis,
    delivery_id,
    send,
)
from hybiscus_webhooks.testing import DramatiqClock, Receiver

from .conftest import Enqueued

SECRET = "tok_5b1c0a9e8d7f"
QUEUE = "hybiscus_webhooks"


def test_the_schedule_is_30_seconds_doubling_eight_times() -> None:
    minutes = [backoff_millis(n) / 60_000 for n in range(MAX_RETRIES)]
    assert minutes == [0.5, 1, 2, 4, 8, 16, 32, 64]


def test_a_delivery_is_a_post_with_exactly_the_seed_body_and_headers(
    stub_broker: StubBroker, start_worker: Any, receiver: Receiver
) -> None:
    ids = send(COMPLETED, "task-1", Webhook(receiver.url + "/hooks/a?x=1", SECRET), broker=stub_broker)
    start_worker(stub_broker)
    [request] = receiver.wait_for(1)
    stub_broker.join(QUEUE, fail_fast=False)
    assert request.method == "POST"
    assert request.path == "/hooks/a?x=1"
    assert request.body == (
        b'{"event":"report.completed","task_id":"task-1",'
        b'"url":"https://reports.example.com/api/v1/get-report?task_id=task-1"}'
    )
    assert list(json.loads(request.body)) == ["event", "task_id", "url"]
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "hybiscus-webhooks/%s" % __version__
    assert request.headers["authorization"] == "Bearer " + SECRET
    assert request.headers["webhook-id"] == ids == delivery_id("task-1", COMPLETED, receiver.url + "/hooks/a?x=1")
    assert len(receiver.requests) == 1


def test_no_authorization_header_without_an_auth_header(
    stub_broker: StubBroker, start_worker: Any, receiver: Receiver
) -> None:
    send(FAILED, "task-2", Webhook(receiver.url), broker=stub_broker)
    start_worker(stub_broker)
    [request] = receiver.wait_for(1)
    assert "authorization" not in request.headers
    assert json.loads(request.body)["event"] == "report.failed"


def test_the_task_id_is_quoted_into_the_report_url(
    stub_broker: StubBroker, start_worker: Any, receiver: Receiver
) -> None:
    send(COMPLETED, "a/b c?d", Webhook(receiver.url), broker=stub_broker)
    start_worker(stub_broker)
    [request] = receiver.wait_for(1)
    assert json.loads(request.body)["url"].endswith("?task_id=a%2Fb%20c%3Fd")


def test_ids_are_stable_and_distinct() -> None:
    first = delivery_id("t", COMPLETED, "https://a.example/h")
    assert first == delivery_id("t", COMPLETED, "https://a.example/h")
    assert len({first, delivery_id("t", FAILED, "https://a.example/h"), delivery_id("u", COMPLETED, "https://a.example/h"),
                delivery_id("t", COMPLETED, "https://a.example/i")}) == 4


def run_failing_delivery(
    broker: StubBroker, start_worker: Any, enqueued: Enqueued, clock: DramatiqClock, receiver: Receiver, attempts: int
) -> list[int]:
    """Deliver once to ``receiver``, moving the clock to each retry as soon as it is scheduled."""
    send(COMPLETED, "task-9", Webhook(receiver.url + "/hook", SECRET), broker=broker)
    start_worker(broker)
    receiver.wait_for(1)
    for retry in range(1, attempts):
        clock.now = enqueued.wait_for_eta(retry) / 1000
        receiver.wait_for(retry + 1)
    broker.join(QUEUE, fail_fast=False)
    return [request.at for request in receiver.requests]


def test_failed_attempts_are_retried_at_exactly_30s_1_2_4_8_16_32_64_min_then_dead_lettered(
    stub_broker: StubBroker, start_worker: Any, enqueued: Enqueued, clock: DramatiqClock, receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.default = 503
    times = run_failing_delivery(stub_broker, start_worker, enqueued, clock, receiver, attempts=9)

    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps == [30_000 * 2**n for n in range(8)]
    assert len(enqueued.etas) == 8  # No tenth attempt was scheduled.
    assert len(stub_broker.dead_letters) == 1
    [warning] = [record for record in caplog.records if record.levelno == logging.WARNING
                 and record.name.startswith("hybiscus_webhooks")]
    assert "task-9" in warning.getMessage() and "report.completed" in warning.getMessage()
    assert "127.0.0.1:%d" % int(receiver.url.rsplit(":", 1)[1]) in warning.getMessage()
    assert "after 9 attempts" in warning.getMessage()


@pytest.mark.parametrize("succeeds_on", [1, 2, 4])
def test_success_stops_the_retries(
    stub_broker: StubBroker, start_worker: Any, enqueued: Enqueued, clock: DramatiqClock, receiver: Receiver,
    succeeds_on: int,
) -> None:
    receiver.statuses = [500, 302, 404][: succeeds_on - 1]
    times = run_failing_delivery(stub_broker, start_worker, enqueued, clock, receiver, attempts=succeeds_on)
    assert len(times) == succeeds_on
    assert len(enqueued.etas) == succeeds_on - 1
    assert stub_broker.dead_letters == []
    assert {request.headers["webhook-id"] for request in receiver.requests} == {
        delivery_id("task-9", COMPLETED, receiver.url + "/hook")
    }


@pytest.mark.parametrize("status", [301, 302, 307, 400, 401, 404, 410, 429, 500, 502, 503])
def test_every_answer_but_2xx_is_a_failed_attempt_and_redirects_are_not_followed(
    stub_broker: StubBroker, start_worker: Any, enqueued: Enqueued, receiver: Receiver, status: int
) -> None:
    receiver.statuses = [status]
    send(COMPLETED, "task-3", Webhook(receiver.url + "/hook"), broker=stub_broker)
    start_worker(stub_broker)
    enqueued.wait_for_eta(1)
    assert [request.path for request in receiver.requests] == ["/hook"]


def test_a_refused_connection_is_a_failed_attempt(
    stub_broker: StubBroker, start_worker: Any, enqueued: Enqueued
) -> None:
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))  # Bound but not listening: a connection is refused.
        send(COMPLETED, "task-4", Webhook("http://127.0.0.1:%d/" % bound.getsockname()[1]), broker=stub_broker)
        start_worker(stub_broker)
        enqueued.wait_for_eta(1)


def test_the_hosts_retry_settings_do_not_change_the_schedule_nor_ours_theirs(
    enqueued: Enqueued, start_worker: Any, clock: DramatiqClock, receiver: Receiver
) -> None:
    host_retries = Retries(max_retries=1, min_backoff=10, retry_when=lambda retries, exc: retries < 1)
    broker = StubBroker(middleware=[host_retries])
    broker.add_middleware(enqueued)
    broker.emit_after("process_boot")
    runs = []

    @dramatiq.actor(broker=broker, queue_name="host")
    def host_actor() -> None:
        runs.append(1)
        raise ValueError("the host's own failure")

    receiver.statuses = [500, 500]
    times = run_failing_delivery(broker, start_worker, enqueued, clock, receiver, attempts=3)
    assert [later - earlier for earlier, later in itertools.pairwise(times)] == [30_000, 60_000]

    host_actor.send()
    clock.now = enqueued.wait_for_eta(3) / 1000
    broker.join("host", fail_fast=False)
    assert len(runs) == 2  # The host's max of 1 retry still holds for its own actors.


def test_install_is_idempotent_and_adds_current_message() -> None:
    broker = StubBroker()
    actor = install(broker)
    assert install(broker) is actor
    assert actor.actor_name == ACTOR_NAME and actor.queue_name == QUEUE
    assert actor.options["max_retries"] == 8 and actor.options["min_backoff"] == 30_000
    assert sum(isinstance(middleware, CurrentMessage) for middleware in broker.middleware) == 1


def test_the_queue_name_is_a_setting() -> None:
    from hybiscus_webhooks import settings

    settings.configure(QUEUE_NAME="webhooks_eu")
    assert install(StubBroker()).queue_name == "webhooks_eu"


def test_install_refuses_a_broker_without_retries() -> None:
    with pytest.raises(ImproperlyConfigured, match="Retries"):
        install(StubBroker(middleware=[]))


def test_no_broker_is_made_up() -> None:
    previous = dramatiq.broker.global_broker
    dramatiq.broker.global_broker = None
    try:
        with pytest.raises(BrokerNotConfigured, match=r"dramatiq\.set_broker"):
            report_completed("t", {"config": {"webhooks": [{"url": "https://a.example/h"}]}})
        assert dramatiq.broker.global_broker is None
    finally:
        dramatiq.broker.global_broker = previous


def test_the_global_broker_is_used_when_set(enqueued: Enqueued) -> None:
    broker = StubBroker()
    previous = dramatiq.broker.global_broker
    dramatiq.set_broker(broker)
    try:
        report_completed("t", {"config": {"webhooks": [{"url": "https://a.example/h"}]}})
        assert broker.queues[QUEUE].qsize() == 1
    finally:
        dramatiq.broker.global_broker = previous


def test_importing_the_package_reads_nothing_and_declares_nothing() -> None:
    code = (
        "import dramatiq.broker, hybiscus_webhooks, hybiscus_webhooks.settings as s;"
        "assert dramatiq.broker.global_broker is None;"
        "assert s._current is None;"
        "print('clean')"
    )
    env = {"HYBISCUS_WEBHOOKS_SETTINGS": "no_such_settings_module", "PATH": ""}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "clean", result.stderr


def test_the_worker_module_fails_clearly_without_a_broker() -> None:
    code = "import hybiscus_webhooks.worker"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "No Dramatiq broker is set" in result.stderr


def test_report_url_is_required_to_send() -> None:
    from hybiscus_webhooks import settings

    settings.configure()
    with pytest.raises(ImproperlyConfigured, match="REPORT_URL is not set"):
        send(COMPLETED, "t", Webhook("https://a.example/h"), broker=StubBroker())


def test_the_secret_travels_outside_the_message_arguments(stub_broker: StubBroker) -> None:
    send(COMPLETED, "t", Webhook("https://a.example/h?sig=querysecret", SECRET), broker=stub_broker)
    message = dramatiq.Message.decode(stub_broker.queues[QUEUE].get())
    assert SECRET not in str(message) and "querysecret" not in str(message)
    assert message.args[0]["endpoint"] == "https://a.example/h"


def test_unknown_event_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"report\.completed, report\.failed"):
        send("report.started", "t", Webhook("https://a.example/h"), broker=StubBroker())


def test_a_broker_wide_age_limit_does_not_cut_the_schedule_short(
    enqueued: Enqueued, start_worker: Any, clock: DramatiqClock, receiver: Receiver
) -> None:
    broker = StubBroker(middleware=[AgeLimit(max_age=60_000), Retries()])
    broker.add_middleware(enqueued)
    broker.emit_after("process_boot")
    receiver.statuses = [500] * 5
    times = run_failing_delivery(broker, start_worker, enqueued, clock, receiver, attempts=6)
    assert times[-1] - times[0] == sum(30_000 * 2**n for n in range(5))  # 15.5 min, far past the 1 min limit.
    assert broker.dead_letters == []


def test_a_broker_wide_time_limit_cannot_interrupt_an_attempt() -> None:
    from dramatiq.middleware import TimeLimit

    from hybiscus_webhooks import settings

    settings.configure(CONNECT_TIMEOUT=5, READ_TIMEOUT=40)
    actor = install(StubBroker(middleware=[Retries(), TimeLimit(time_limit=1000)]))
    assert actor.options["time_limit"] >= 45_000
