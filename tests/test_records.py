"""The records backends, each held to the same behaviour: in memory and in a real Redis."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybiscus_webhooks import ImproperlyConfigured, settings
from hybiscus_webhooks import records as records_module
from hybiscus_webhooks.records import (
    DELIVERED,
    EXHAUSTED,
    MAX_ATTEMPTS,
    PENDING,
    REFUSED,
    RETRYING,
    Attempt,
    FlushRecords,
    MemoryRecords,
    RecordsBackend,
    RedisRecords,
    deliveries,
    from_settings,
    redis_client,
)

from .conftest import require_service, unique

REDIS_URL = "redis://127.0.0.1:6379/0"


def delivery(task_id: str = "task-1", event: str = "report.completed", n: int = 1) -> dict[str, Any]:
    return {"id": "msg_%s_%s_%d" % (task_id, event, n), "task_id": task_id, "event": event,
            "endpoint": "https://h%d.example/hook" % n, "report_url": "https://r.example/%s" % task_id}


def failed_attempt(number: int, at: float) -> Attempt:
    return Attempt(number, at, 503, None, 0.25, "busy")


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    require_service("Redis", 6379)
    prefix = unique("hw-test-records") + ":"
    yield prefix
    client = redis_client(REDIS_URL)
    for key in client.scan_iter(prefix + "*"):
        client.delete(key)
    client.close()


def count_batches(backend: RedisRecords) -> list[int]:
    """The size of every batch the backend's writer sends from now on, in order."""
    batches: list[int] = []
    send = backend._writer._send

    def counted(writes: list[Any]) -> None:
        batches.append(len(writes))
        send(writes)

    backend._writer._send = counted
    return batches


def memory_backend(request: pytest.FixtureRequest) -> RecordsBackend:
    return MemoryRecords(retention=3600)


def redis_backend(request: pytest.FixtureRequest) -> RecordsBackend:
    prefix = request.getfixturevalue("redis_prefix")
    return RedisRecords(redis_client(REDIS_URL), key_prefix=prefix, retention=3600)


@pytest.fixture(params=[memory_backend, pytest.param(redis_backend, marks=pytest.mark.redis)], ids=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> RecordsBackend:
    built: RecordsBackend = request.param(request)
    return built


def test_a_delivery_from_pending_through_retries_to_delivered(backend: RecordsBackend) -> None:
    one = delivery()
    backend.write(one, state=PENDING, at=1000.0, only_if_new=True)
    assert backend.for_task("task-1")[0].state == PENDING
    backend.write(one, state=RETRYING, at=1001.0, attempt=failed_attempt(1, 1000.5), next_attempt_at=1031.0)
    record = backend.get(one["id"])
    assert record is not None
    assert (record.state, record.next_attempt_at, record.updated_at) == (RETRYING, 1031.0, 1001.0)
    backend.write(one, state=DELIVERED, at=1032.0, attempt=Attempt(2, 1031.0, 204, None, 0.01, ""))
    [record] = backend.for_task("task-1")
    assert record.as_dict() == {
        "delivery_id": one["id"], "task_id": "task-1", "event": "report.completed",
        "endpoint": "https://h1.example/hook", "state": DELIVERED, "updated_at": 1032.0, "next_attempt_at": None,
        "attempts": (
            {"number": 1, "at": 1000.5, "status": 503, "error": None, "latency": 0.25, "response_head": "busy"},
            {"number": 2, "at": 1031.0, "status": 204, "error": None, "latency": 0.01, "response_head": ""},
        ),
    }
    assert [attempt.result() for attempt in record.attempts] == ["HTTP 503", "HTTP 204"]


def test_a_late_pending_write_never_hides_an_attempt(backend: RecordsBackend) -> None:
    # The worker may record its first attempt before send() gets to record the pending state.
    one = delivery()
    backend.write(one, state=DELIVERED, at=10.0, attempt=Attempt(1, 9.0, 200, None, 0.1))
    backend.write(one, state=PENDING, at=11.0, only_if_new=True)
    record = backend.get(one["id"])
    assert record is not None and record.state == DELIVERED and record.updated_at == 10.0


def test_every_delivery_of_a_task_in_a_stable_order_and_nothing_of_other_tasks(backend: RecordsBackend) -> None:
    for n, event in [(2, "report.failed"), (1, "report.completed"), (3, "report.completed")]:
        backend.write(delivery(event=event, n=n), state=PENDING, at=1.0)
    backend.write(delivery(task_id="task-2"), state=PENDING, at=1.0)
    found = backend.for_task("task-1")
    assert [(record.event, record.endpoint) for record in found] == [
        ("report.completed", "https://h1.example/hook"), ("report.completed", "https://h3.example/hook"),
        ("report.failed", "https://h2.example/hook"),
    ]
    assert backend.for_task("task-3") == [] and backend.get("msg_none") is None


def test_failed_deliveries_newest_first_until_redelivered(backend: RecordsBackend) -> None:
    first, second, fine = delivery(n=1), delivery(n=2), delivery(n=3)
    backend.write(first, state=EXHAUSTED, at=100.0, attempt=failed_attempt(9, 99.0))
    backend.write(fine, state=DELIVERED, at=150.0)
    backend.write(second, state=REFUSED, at=200.0, attempt=Attempt(1, 200.0, None, "DestinationRefused", 0.0))
    assert [record.delivery_id for record in backend.failed()] == [second["id"], first["id"]]
    assert [record.delivery_id for record in backend.failed(limit=1)] == [second["id"]]
    backend.write(first, state=PENDING, at=300.0)  # A redelivery.
    assert [record.delivery_id for record in backend.failed()] == [second["id"]]


def test_attempts_are_capped(backend: RecordsBackend) -> None:
    one = delivery()
    for number in range(1, MAX_ATTEMPTS + 6):
        backend.write(one, state=RETRYING, at=float(number), attempt=failed_attempt(number, float(number)))
    record = backend.get(one["id"])
    assert record is not None
    assert [attempt.number for attempt in record.attempts] == list(range(6, MAX_ATTEMPTS + 6))


def test_memory_records_forget_by_age_and_by_count() -> None:
    backend = MemoryRecords(retention=60, max_deliveries=2)
    backend.write(delivery(n=1), state=PENDING, at=0.0)
    backend.write(delivery(n=2), state=PENDING, at=30.0)
    backend.write(delivery(n=3), state=PENDING, at=61.0)
    assert [record.delivery_id[-1] for record in backend.for_task("task-1")] == ["2", "3"]  # 1 was too old.
    backend.write(delivery(n=4), state=PENDING, at=95.0)
    assert [record.delivery_id[-1] for record in backend.for_task("task-1")] == ["3", "4"]  # 2 was one too many.


@pytest.mark.redis
def test_redis_keys_expire_after_the_retention(redis_prefix: str) -> None:
    backend = RedisRecords(redis_client(REDIS_URL), key_prefix=redis_prefix, retention=120)
    backend.write(delivery(), state=EXHAUSTED, at=1.0, attempt=failed_attempt(9, 1.0))
    assert backend.flush()
    keys = list(backend.client.scan_iter(redis_prefix + "*"))
    assert sorted(key[len(redis_prefix):].split(":")[0] for key in keys) == ["d", "failed", "t"]
    assert all(0 < backend.client.ttl(key) <= 120 for key in keys)


@pytest.mark.redis
def test_a_waiting_delivery_is_one_small_packed_hash_and_reads_back_exactly(redis_prefix: str) -> None:
    backend = RedisRecords(redis_client(REDIS_URL), key_prefix=redis_prefix, retention=120)
    at, next_at = 1795968561.402, 1795969041.402
    failed = delivery(event="report.failed")
    backend.write(failed, state=RETRYING, at=at, attempt=Attempt(5, at, None, "NewConnectionError", 0.000347),
                  next_attempt_at=next_at)
    assert backend.flush()
    key = redis_prefix + "d:" + failed["id"]
    stored = backend.client.hgetall(key)
    # Times as integer milliseconds and the event without "report.": Redis keeps the hash packed.
    assert stored == {"task": "task-1", "event": "failed", "to": "https://h1.example/hook", "state": RETRYING,
                      "at": "1795968561402", "next": "1795969041402", "n": "1",
                      "a1": '[5,1795968561.402,null,"NewConnectionError",0.000347]'}
    assert backend.client.object("encoding", key) == "listpack"
    record = backend.get(failed["id"])
    assert record is not None
    assert (record.event, record.updated_at, record.next_attempt_at) == ("report.failed", at, next_at)


@given(
    number=st.integers(1, MAX_ATTEMPTS), at=st.floats(0, 4e9), status=st.none() | st.integers(100, 599),
    error=st.none() | st.text(max_size=30), latency=st.floats(0, 120), head=st.text(max_size=30),
)
def test_an_attempt_is_stored_as_the_json_of_its_values(
    number: int, at: float, status: int | None, error: str | None, latency: float, head: str
) -> None:
    # Formatted by hand rather than by the JSON encoder: the values must be what encoding them gave.
    text = records_module._attempt_json(Attempt(number, at, status, error, latency, head))
    assert json.loads(text) == [number, round(at, 3), status, error, round(latency, 6)] + ([head] if head else [])


@pytest.mark.redis
def test_from_settings_reads_the_url_prefix_and_retention(redis_prefix: str) -> None:
    settings.configure(RECORDS_REDIS_URL=REDIS_URL, RECORDS_KEY_PREFIX=redis_prefix, RECORDS_RETENTION=60)
    backend = from_settings()
    assert isinstance(backend, RedisRecords)
    assert (backend.key_prefix, backend.retention) == (redis_prefix, 60)
    assert backend.describe() == "Redis at 127.0.0.1:6379 db 0 (keys %s*)" % redis_prefix
    backend.ping()
    backend.write(delivery(), state=PENDING, at=1.0)
    assert [record.state for record in deliveries("task-1", backend=backend)] == [PENDING]


def test_records_are_off_without_redis_and_the_api_says_how_to_turn_them_on() -> None:
    settings.configure()
    assert from_settings() is None
    settings.configure(RECORDS_REDIS_URL=False)
    with pytest.raises(ImproperlyConfigured, match="set RECORDS_REDIS_URL"):
        deliveries("task-1")


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "redis-ish", 6379])
def test_a_bad_records_url_is_named_and_never_echoed(url: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match="RECORDS_REDIS_URL must be a redis://") as raised:
        settings.configure(RECORDS_REDIS_URL=url)
    assert str(url) not in str(raised.value)


def test_the_records_url_is_masked_in_the_settings() -> None:
    configured = settings.configure(RECORDS_REDIS_URL="redis://:hunter2hunter2@127.0.0.1:6379/3")
    assert configured.as_dict()["RECORDS_REDIS_URL"] == "********"
    backend = from_settings()
    assert backend is not None and "hunter2" not in backend.describe()


@pytest.mark.redis
def test_writes_from_many_threads_leave_in_batches_and_each_delivery_ends_in_its_last_state(
    redis_prefix: str,
) -> None:
    backend = RedisRecords(redis_client(REDIS_URL), key_prefix=redis_prefix, retention=3600)
    batches = count_batches(backend)

    def deliver(thread: int) -> None:
        for n in range(50):
            one = delivery("task-%d" % thread, n=n)
            backend.write(one, state=PENDING, at=1000.0, only_if_new=True)
            backend.write(one, state=RETRYING, at=1001.0, attempt=failed_attempt(1, 1000.5), next_attempt_at=1031.0)
            backend.write(one, state=DELIVERED, at=1032.0, attempt=Attempt(2, 1031.0, 204, None, 0.01, ""))

    threads = [threading.Thread(target=deliver, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Reading flushes this process's writes first.
    found = [record for index in range(8) for record in backend.for_task("task-%d" % index)]
    assert len(found) == 400 and {record.state for record in found} == {DELIVERED}
    assert all(record.next_attempt_at is None and len(record.attempts) == 2 for record in found)
    assert sum(batches) == 1200 and len(batches) < 1200  # Fewer round trips than writes.
    backend.close()


def test_a_stalled_redis_costs_a_bounded_queue_and_the_dropped_writes_are_counted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(records_module, "MAX_WAITING_WRITES", 10)
    backend = RedisRecords(redis_client("redis://127.0.0.1:1/0"), key_prefix="unused:", retention=60)
    stalled = threading.Event()
    release = threading.Event()
    sent: list[int] = []

    def stall(writes: list[Any]) -> None:
        stalled.set()
        release.wait(10)
        sent.append(len(writes))

    backend._writer._send = stall
    backend.write(delivery(n=0), state=PENDING, at=1.0)
    assert stalled.wait(5)  # The first write is on its way, and Redis does not answer.
    for n in range(1, 16):
        backend.write(delivery(n=n), state=PENDING, at=1.0)  # Never blocks.
    assert len(backend._writer._waiting) == 10
    release.set()
    assert backend.flush(timeout=5)
    # One line for the five dropped writes, once Redis caught up, not one per write.
    [dropped] = [record.getMessage() for record in caplog.records if "too many were waiting" in record.getMessage()]
    assert dropped.startswith("Could not record 5 write(s)")
    assert sum(sent) == 11


def test_a_worker_sends_its_last_record_writes_when_it_stops(redis_prefix: str) -> None:
    backend = RedisRecords(redis_client(REDIS_URL), key_prefix=redis_prefix, retention=3600)
    sending, release = threading.Event(), threading.Event()
    send = backend._writer._send

    def held(writes: list[Any]) -> None:
        sending.set()
        release.wait(10)
        send(writes)

    backend._writer._send = held
    backend.write(delivery(), state=PENDING, at=1000.0)
    assert sending.wait(5)
    shutdown = threading.Thread(target=FlushRecords().after_worker_shutdown, args=(None, None))
    shutdown.start()
    shutdown.join(0.2)
    assert shutdown.is_alive()  # The shutdown waits for the write on its way ...
    release.set()
    shutdown.join(5)
    assert not shutdown.is_alive()
    client = redis_client(REDIS_URL)
    assert client.hget(redis_prefix + "d:" + delivery()["id"], "state") == PENDING  # ... which arrived.
    client.close()
    backend.close()


def test_an_idle_writer_thread_ends_and_the_next_write_starts_another(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records_module, "_WRITER_IDLE_SECONDS", 0.05)
    backend = RedisRecords(redis_client("redis://127.0.0.1:1/0"), key_prefix="unused:", retention=60)
    sent: list[int] = []
    backend._writer._send = lambda writes: sent.append(len(writes))
    backend.write(delivery(n=1), state=PENDING, at=1.0)
    first = backend._writer._thread
    assert first is not None and backend.flush(timeout=5)
    first.join(5)
    assert not first.is_alive() and backend._writer._thread is None
    backend.write(delivery(n=2), state=PENDING, at=2.0)
    assert backend.flush(timeout=5) and sent == [1, 1]


@pytest.mark.redis
def test_a_batch_lingers_for_more_writes_and_a_flush_sends_it_at_once(
    redis_prefix: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(records_module, "LINGER_SECONDS", 30.0)
    backend = RedisRecords(redis_client(REDIS_URL), key_prefix=redis_prefix, retention=3600)
    batches = count_batches(backend)
    for n in range(3):
        backend.write(delivery(n=n), state=PENDING, at=1000.0)
    # The writer waits for more writes to join the first (30 s here), but not once a flush waits.
    assert backend.flush(timeout=5)
    assert batches == [3]
    assert [record.state for record in backend.for_task("task-1")] == [PENDING] * 3
    backend.close()
