"""The helpers that hybiscus_webhooks.testing ships for users' tests."""

from __future__ import annotations

from typing import Any

import dramatiq
import dramatiq.broker
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Retries

from hybiscus_webhooks import report_completed, report_failed
from hybiscus_webhooks.delivery import ACTOR_NAME
from hybiscus_webhooks.testing import DramatiqClock, Receiver, RetryWatch, make_stub_broker, queued_deliveries

from .conftest import REPORT_URL

SECRET = "tok_9f8e7d6c5b4a"


def report(*urls: str) -> dict[str, Any]:
    return {"config": {"webhooks": [{"url": url, "auth_header": SECRET} for url in urls]}}


def test_make_stub_broker_installs_the_actor_and_sets_no_global_broker() -> None:
    previous = dramatiq.broker.global_broker
    broker = make_stub_broker()
    assert ACTOR_NAME in broker.get_declared_actors()
    assert dramatiq.broker.global_broker is previous
    assert make_stub_broker() is not broker


def test_make_stub_broker_passes_its_options_on() -> None:
    broker = make_stub_broker(middleware=[Retries(max_retries=1)])
    assert [type(middleware).__name__ for middleware in broker.middleware] == [
        "Retries", "CurrentMessage", "DropRetryTraceback", "FlushRecords", "WorkerThreads",
    ]


def test_queued_deliveries_reads_what_each_attempt_will_send() -> None:
    broker = make_stub_broker()
    completed = report_completed("task-1", report("https://a.example/1?token=q", "https://b.example/2"), broker=broker)
    failed = report_failed("task-2", report("https://a.example/1?token=q"), broker=broker)

    deliveries = queued_deliveries(broker)
    assert [(d.id, d.event, d.task_id, d.webhook.url) for d in deliveries] == [
        (completed[0], "report.completed", "task-1", "https://a.example/1?token=q"),
        (completed[1], "report.completed", "task-1", "https://b.example/2"),
        (failed[0], "report.failed", "task-2", "https://a.example/1?token=q"),
    ]
    assert deliveries[0].report_url == REPORT_URL.format(task_id="task-1")
    assert deliveries[0].webhook.auth_header == SECRET
    assert SECRET not in repr(deliveries)


def test_queued_deliveries_skips_the_hosts_messages_on_the_same_queue() -> None:
    broker = make_stub_broker()

    @dramatiq.actor(broker=broker, queue_name="hybiscus_webhooks", actor_name="hosts_own_actor")
    def hosts_own_actor() -> None:
        pass

    hosts_own_actor.send()
    [sent] = report_completed("task-3", report("https://a.example/1"), broker=broker)
    hosts_own_actor.send()
    assert [delivery.id for delivery in queued_deliveries(broker)] == [sent]


def test_queued_deliveries_needs_a_stub_broker_with_the_actor() -> None:
    with pytest.raises(ValueError, match=r"install\(broker\)"):
        queued_deliveries(StubBroker())
    with pytest.raises(TypeError, match="StubBroker"):
        queued_deliveries(object())  # type: ignore[arg-type]


def test_retry_watch_gives_the_due_time_on_dramatiqs_clock(start_worker: Any) -> None:
    broker = make_stub_broker()
    watch = RetryWatch()
    broker.add_middleware(watch)
    with DramatiqClock(start=1_700_000_000) as clock, Receiver([500]) as receiver:
        report_completed("task-4", report(receiver.url), broker=broker)
        start_worker(broker)
        assert watch.wait_for(1) == 1_700_000_030.0
        clock.now = watch.wait_for(1)
        assert [request.status for request in receiver.wait_for(2)] == [500, 204]


def test_retry_watch_times_out_clearly() -> None:
    with pytest.raises(TimeoutError, match="Expected 1 delayed messages, got 0"):
        RetryWatch().wait_for(1, timeout=0.01)
