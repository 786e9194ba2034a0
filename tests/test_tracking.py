"""Records, metrics and ON_EXHAUSTED as deliveries run on a real Worker against a real receiver."""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from prometheus_client import CollectorRegistry

from hybiscus_webhooks import DestinationRefused, ExhaustedDelivery, Webhook, records, settings
from hybiscus_webhooks import delivery as delivery_module
from hybiscus_webhooks.delivery import COMPLETED, FAILED, delivery_id, send
from hybiscus_webhooks.records import DELIVERED, EXHAUSTED, PENDING, REFUSED, RETRYING, MemoryRecords
from hybiscus_webhooks.sender import Outcome
from hybiscus_webhooks.testing import DramatiqClock, Receiver

from .conftest import REPORT_URL, Enqueued, require_service, unique

SECRET = "tok_tracking_7c1d9e"
QUEUE = "hybiscus_webhooks"


@pytest.fixture
def registry() -> CollectorRegistry:
    fresh = CollectorRegistry()
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, METRICS_REGISTRY=fresh)
    return fresh


@pytest.fixture
def memory() -> Iterator[MemoryRecords]:
    backend = MemoryRecords()
    records.use(backend)
    yield backend
    records.use(None)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_a_record_follows_a_delivery_through_its_retries_to_success(
    stub_broker: StubBroker, start_worker: Any, enqueued: Enqueued, clock: DramatiqClock, receiver: Receiver,
    memory: MemoryRecords, registry: CollectorRegistry,
) -> None:
    receiver.statuses = [503, 500]
    receiver.default = 200  # Not 204, which must not carry the body this receiver sends with every answer.
    receiver.response_body = b"try later"
    url = receiver.url + "/hook?account=42"
    sent = send(COMPLETED, "task-t1", Webhook(url, SECRET), broker=stub_broker)
    [pending] = memory.for_task("task-t1")
    assert (pending.delivery_id, pending.state, pending.attempts) == (sent, PENDING, ())
    assert pending.endpoint == receiver.url + "/hook"

    start_worker(stub_broker)
    first_at = clock.millis() / 1000
    eta = enqueued.wait_for_eta(1)
    retrying = memory.get(sent)
    assert retrying is not None and retrying.state == RETRYING
    assert retrying.next_attempt_at == eta / 1000  # Exactly when the broker will run it.
    [attempt] = retrying.attempts
    assert (attempt.number, attempt.at, attempt.status, attempt.error) == (1, first_at, 503, None)
    assert attempt.response_head == "try later" and 0 < attempt.latency < 5

    clock.now = eta / 1000
    clock.now = enqueued.wait_for_eta(2) / 1000
    receiver.wait_for(3)
    stub_broker.join(QUEUE, fail_fast=False)
    [record] = memory.for_task("task-t1")
    assert record.state == DELIVERED and record.next_attempt_at is None
    assert [(a.number, a.status) for a in record.attempts] == [(1, 503), (2, 500), (3, 200)]
    assert sample(registry, "hybiscus_webhooks_attempts_total", event=COMPLETED, outcome="5xx") == 2
    assert sample(registry, "hybiscus_webhooks_attempts_total", event=COMPLETED, outcome="2xx") == 1
    assert sample(registry, "hybiscus_webhooks_retries_scheduled_total", event=COMPLETED) == 2
    assert sample(registry, "hybiscus_webhooks_attempt_seconds_count", event=COMPLETED) == 3
    assert sample(registry, "hybiscus_webhooks_exhausted_total", event=COMPLETED) == 0


def run_to_exhaustion(
    broker: StubBroker, start_worker: Any, enqueued: Enqueued, clock: DramatiqClock, receiver: Receiver
) -> str:
    receiver.default = 503
    sent = send(FAILED, "task-t2", Webhook(receiver.url + "/gone", SECRET), broker=broker)
    start_worker(broker)
    for retry in range(1, 9):
        clock.now = enqueued.wait_for_eta(retry) / 1000
    receiver.wait_for(9)
    broker.join(QUEUE, fail_fast=False)
    return sent


def test_an_exhausted_delivery_is_recorded_counted_and_reported_once(
    stub_broker: StubBroker, start_worker: Any, enqueued: Enqueued, clock: DramatiqClock, receiver: Receiver,
    memory: MemoryRecords, registry: CollectorRegistry,
) -> None:
    reported: list[ExhaustedDelivery] = []
    settings.configure(
        REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, METRICS_REGISTRY=registry, ON_EXHAUSTED=reported.append,
    )
    sent = run_to_exhaustion(stub_broker, start_worker, enqueued, clock, receiver)

    record = memory.get(sent)
    assert record is not None and record.state == EXHAUSTED and len(record.attempts) == 9
    assert memory.failed() == [record]
    assert reported == [ExhaustedDelivery(
        delivery_id=sent, task_id="task-t2", event=FAILED, endpoint=receiver.url + "/gone", attempts=9,
        last_result="HTTP 503", at=record.attempts[-1].at,
    )]
    assert SECRET not in repr(reported[0])
    assert sample(registry, "hybiscus_webhooks_exhausted_total", event=FAILED) == 1
    assert sample(registry, "hybiscus_webhooks_retries_scheduled_total", event=FAILED) == 8
    assert sample(registry, "hybiscus_webhooks_attempts_total", event=FAILED, outcome="5xx") == 9


def fail(exhausted: ExhaustedDelivery) -> None:
    raise RuntimeError("the pager is down")


def test_an_on_exhausted_that_raises_is_logged_and_the_message_still_dead_letters(
    stub_broker: StubBroker, start_worker: Any, enqueued: Enqueued, clock: DramatiqClock, receiver: Receiver,
    memory: MemoryRecords, caplog: pytest.LogCaptureFixture,
) -> None:
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, ON_EXHAUSTED="tests.test_tracking.fail")
    run_to_exhaustion(stub_broker, start_worker, enqueued, clock, receiver)
    assert len(stub_broker.dead_letters) == 1
    assert any("ON_EXHAUSTED raised" in record.getMessage() for record in caplog.records)


def test_a_receiver_that_echoes_our_secrets_does_not_get_them_into_the_records(
    stub_broker: StubBroker, start_worker: Any, receiver: Receiver, memory: MemoryRecords,
) -> None:
    receiver.statuses = [200]  # A 204 has no body to echo anything in.
    receiver.response_body = ("you sent Bearer %s to ?sig=querysecret99&x=1" % SECRET).encode()
    send(COMPLETED, "task-t3", Webhook(receiver.url + "/h?sig=querysecret99&x=1", SECRET), broker=stub_broker)
    start_worker(stub_broker)
    receiver.wait_for(1)
    stub_broker.join(QUEUE, fail_fast=False)
    [record] = memory.for_task("task-t3")
    head = record.attempts[0].response_head
    assert SECRET not in head and "querysecret99" not in head
    assert head == "you sent Bearer [redacted] to ?[redacted]"


class RefusingSender:
    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        raise DestinationRefused("Refused: a loopback address.")


def test_a_refused_destination_is_recorded_and_counted(
    stub_broker: StubBroker, start_worker: Any, memory: MemoryRecords, registry: CollectorRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The SSRF guard is built elsewhere; this stands in for a sender that refuses.
    monkeypatch.setattr(delivery_module, "get_sender", RefusingSender)
    send(COMPLETED, "task-t4", Webhook("http://127.0.0.1:9/x"), broker=stub_broker)
    start_worker(stub_broker)
    stub_broker.join(QUEUE, fail_fast=False)
    [record] = memory.for_task("task-t4")
    assert record.state == REFUSED and record.attempts[0].error == "DestinationRefused"
    assert memory.failed() == [record]
    assert sample(registry, "hybiscus_webhooks_refused_total", event=COMPLETED) == 1
    assert len(stub_broker.dead_letters) == 1


@pytest.mark.redis
def test_records_in_a_real_redis_through_the_python_api(
    stub_broker: StubBroker, start_worker: Any, receiver: Receiver,
) -> None:
    require_service("Redis", 6379)
    prefix = unique("hw-test-tracking") + ":"
    settings.configure(
        REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, RECORDS_REDIS_URL="redis://127.0.0.1:6379/0",
        RECORDS_KEY_PREFIX=prefix,
    )
    backend = records.current()
    assert backend is not None
    try:
        sent = send(COMPLETED, "task-t5", Webhook(receiver.url + "/ok"), broker=stub_broker)
        start_worker(stub_broker)
        receiver.wait_for(1)
        stub_broker.join(QUEUE, fail_fast=False)
        [record] = records.deliveries("task-t5")
        assert (record.delivery_id, record.state, len(record.attempts)) == (sent, DELIVERED, 1)
    finally:
        client = backend.client  # type: ignore[attr-defined]
        for key in client.scan_iter(prefix + "*"):
            client.delete(key)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("redis_answers", ["never", "refused"])
def test_a_records_redis_that_is_down_or_hangs_never_fails_nor_stalls_a_delivery(
    stub_broker: StubBroker, start_worker: Any, receiver: Receiver, registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture, redis_answers: str,
) -> None:
    with socket.socket() as listener:
        if redis_answers == "never":
            # Listening but never accepting: connections complete in the backlog, then no answer comes.
            listener.bind(("127.0.0.1", 0))
            listener.listen(8)
            port = listener.getsockname()[1]
        else:
            port = closed_port()
        settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, METRICS_REGISTRY=registry,
                           RECORDS_REDIS_URL="redis://:pw-not-logged@127.0.0.1:%d/0" % port)
        started = time.monotonic()
        send(COMPLETED, "task-t6", Webhook(receiver.url + "/ok"), broker=stub_broker)
        start_worker(stub_broker)
        receiver.wait_for(1)
        stub_broker.join(QUEUE, fail_fast=False)
        elapsed = time.monotonic() - started

        # The writes leave from a thread of their own: wait until both have failed.
        assert records.flush(timeout=5)
    assert receiver.requests[0].status == 204 and stub_broker.dead_letters == []
    assert elapsed < 3  # The delivery never waited on Redis (each write may wait REDIS_TIMEOUT, 0.5 s).
    warnings = [r.getMessage() for r in caplog.records if r.name == "hybiscus_webhooks.records"]
    assert all("127.0.0.1:%d db 0" % port in line for line in warnings)
    assert sum(int(re.search(r"Could not record (\d+) write", line).group(1)) for line in warnings) == 2
    assert "pw-not-logged" not in caplog.text
    assert sample(registry, "hybiscus_webhooks_record_write_failures_total") == 2


@pytest.mark.redis
def test_a_redis_broker_keeps_the_records_in_its_own_redis_by_default(receiver: Receiver) -> None:
    require_service("Redis", 6379)
    from dramatiq.brokers.redis import RedisBroker

    prefix, queue = unique("hw-test-reuse") + ":", unique("hw_test")
    settings.configure(
        REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, QUEUE_NAME=queue, RECORDS_KEY_PREFIX=prefix,
    )
    broker = RedisBroker(url="redis://127.0.0.1:6379/0", namespace=unique("hw-test"))
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_timeout=50)
    try:
        sent = send(COMPLETED, "task-t7", Webhook(receiver.url + "/ok"), broker=broker)
        worker.start()
        receiver.wait_for(1)
        broker.join(queue)
        backend = records.current()
        assert isinstance(backend, records.RedisRecords)
        assert backend.client.connection_pool.connection_kwargs["socket_timeout"] == records.REDIS_TIMEOUT
        [record] = records.deliveries("task-t7")
        assert (record.delivery_id, record.state) == (sent, DELIVERED)
        assert record.delivery_id == delivery_id("task-t7", COMPLETED, receiver.url + "/ok")
    finally:
        worker.stop()  # First: a running worker writes its heartbeat again.
        for pattern in (prefix + "*", broker.namespace + ":*"):
            for key in broker.client.scan_iter(pattern):
                broker.client.delete(key)
        broker.close()


def test_records_and_metrics_are_off_when_asked(
    stub_broker: StubBroker, start_worker: Any, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="hybiscus_webhooks")
    settings.configure(
        REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, RECORDS_REDIS_URL=False, METRICS_REGISTRY=False,
    )
    assert records.current() is None
    send(COMPLETED, "task-t8", Webhook(receiver.url + "/ok"), broker=stub_broker)
    start_worker(stub_broker)
    receiver.wait_for(1)
    stub_broker.join(QUEUE, fail_fast=False)
    assert not [r for r in caplog.records if r.name == "hybiscus_webhooks.tracking"]
    assert isinstance(dramatiq.broker.global_broker, (type(None), dramatiq.Broker))
