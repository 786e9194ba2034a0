"""Both task stores keep the same promises; the Redis one also expires its keys on the server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hybiscus_webhooks_contrib.report_server import MemoryTaskStore, RedisTaskStore, Task, TaskStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest, namespace: str) -> Iterator[TaskStore]:
    if request.param == "memory":
        yield MemoryTaskStore(ttl=60)
        return
    store = RedisTaskStore.from_url(request.getfixturevalue("redis_url"), namespace=namespace, ttl=60)
    yield store
    for key in store.client.scan_iter(match="%s:*" % namespace):
        store.client.delete(key)
    store.close()


def test_a_task_goes_through_its_states_keeping_its_report(store: TaskStore) -> None:
    assert store.get("t1") is None and store.get_pdf("t1") is None and store.get_report("t1") is None
    report = {"type": "Report", "config": {"webhooks": [{"url": "https://x.example/h", "auth_header": "a"}]}}
    store.put(Task("t1", "QUEUED"), report=report)
    assert store.get("t1") == Task("t1", "QUEUED", None)
    store.put(Task("t1", "RUNNING"))
    store.put(Task("t1", "SUCCESS"), pdf=b"%PDF-1.4 ...")
    assert store.get("t1") == Task("t1", "SUCCESS", None)
    assert store.get_pdf("t1") == b"%PDF-1.4 ..."
    assert store.get_report("t1") == report


def test_a_failed_task_keeps_its_error_message(store: TaskStore) -> None:
    store.put(Task("t2", "FAILED", "unknown component type 'X'"))
    assert store.get("t2") == Task("t2", "FAILED", "unknown component type 'X'")
    assert store.get_pdf("t2") is None
    assert store.get("t2").as_json() == {  # type: ignore[union-attr]
        "task_id": "t2", "status": "FAILED", "error_message": "unknown component type 'X'",
    }


def test_memory_tasks_expire_after_their_ttl_from_the_last_change() -> None:
    clock = Clock()
    store = MemoryTaskStore(ttl=60, clock=clock)
    store.put(Task("t", "QUEUED"))
    clock.now += 50
    store.put(Task("t", "SUCCESS"), pdf=b"pdf")
    clock.now += 59
    assert store.get_pdf("t") == b"pdf"
    clock.now += 1
    assert store.get("t") is None and store.get_pdf("t") is None


def test_memory_store_drops_expired_tasks_when_written_to() -> None:
    clock = Clock()
    store = MemoryTaskStore(ttl=60, clock=clock)
    store.put(Task("old", "SUCCESS"), pdf=b"x" * 1000)
    clock.now += 61
    store.put(Task("new", "QUEUED"))
    assert list(store._entries) == ["new"]


@pytest.mark.redis
def test_redis_keeps_each_task_under_a_namespaced_key_with_a_ttl(redis_url: str, namespace: str) -> None:
    store = RedisTaskStore.from_url(redis_url, namespace=namespace, ttl=60)
    try:
        store.put(Task("t3", "QUEUED"))
        assert 0 < store.client.ttl("%s:task:t3" % namespace) <= 60
        assert store.client.hgetall("%s:task:t3" % namespace) == {b"status": b"QUEUED", b"error_message": b""}
    finally:
        store.client.delete("%s:task:t3" % namespace)
        store.close()
