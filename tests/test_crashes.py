"""``kill -9`` of a real `dramatiq` worker process in the middle of 500 deliveries, on Redis and on RabbitMQ.

After a new worker starts, every webhook arrives at least once, duplicates carry the same
``webhook-id``, and retries the dead worker was holding still keep their schedule.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dramatiq
import pytest

from hybiscus_webhooks import report_completed, settings
from hybiscus_webhooks.delivery import COMPLETED, delivery_id

from .conftest import REPORT_URL, require_service, unique
from .e2e.processes import DramatiqCommand
from .e2e.slow_receiver import Arrival, SlowReceiver

DELIVERIES = 500
#: The first ones fail once, so that their retries wait in the delay queue of the worker that dies.
FLAKY = 20
#: Seconds the receiver takes to answer: 8 worker threads get through about 150 deliveries a second.
RECEIVER_DELAY = 0.05
#: Arrivals before the kill: well after the flaky ones, well before the end.
KILL_AFTER = 150

REDIS_URL = "redis://127.0.0.1:6379/0"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
#: What a Redis broker needs to give a dead worker's messages back promptly (docs/brokers.rst):
#: a heartbeat older than this (ms) marks the worker dead...
REDIS_HEARTBEAT_TIMEOUT = 10_000
#: ... and its unacked messages return when maintenance next runs on their queue: per million commands.
#: On every command here, so that the time to recover is the heartbeat timeout and the test is not a gamble.
REDIS_MAINTENANCE_CHANCE = 1_000_000


@dataclass
class Setup:
    broker: dramatiq.Broker
    env: dict[str, str]


@pytest.fixture(params=[pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def setup(request: pytest.FixtureRequest) -> Iterator[Setup]:
    queue = unique("hw_crash")
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, QUEUE_NAME=queue)
    env = {"HW_E2E_BROKER": request.param, "HW_E2E_QUEUE": queue}
    if request.param == "redis":
        require_service("Redis", 6379)
        from dramatiq.brokers.redis import RedisBroker

        namespace = unique("hw-crash")
        broker: dramatiq.Broker = RedisBroker(url=REDIS_URL, namespace=namespace)
        env.update(HW_E2E_URL=REDIS_URL, HW_E2E_NAMESPACE=namespace,
                   HW_E2E_HEARTBEAT_TIMEOUT=str(REDIS_HEARTBEAT_TIMEOUT),
                   HW_E2E_MAINTENANCE_CHANCE=str(REDIS_MAINTENANCE_CHANCE))
    else:
        require_service("RabbitMQ", 5672)
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=RABBITMQ_URL)
        env.update(HW_E2E_URL=RABBITMQ_URL)
    yield Setup(broker, {**os.environ, **env})
    broker.close()
    if request.param == "redis":
        client = broker.client  # type: ignore[attr-defined]
        for key in client.scan_iter(match=namespace + ":*", count=1000):
            client.delete(key)
        client.close()
    else:
        _delete_queues(RABBITMQ_URL, queue)


def _delete_queues(url: str, queue: str) -> None:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for name in (queue, queue + ".DQ", queue + ".XQ"):
            channel.queue_delete(name)
    finally:
        connection.close()


def _delivered(arrivals: list[Arrival]) -> set[str]:
    return {arrival.path for arrival in arrivals if arrival.status == 204}


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_no_webhook(setup: Setup, tmp_path: Path) -> None:
    with SlowReceiver(delay=RECEIVER_DELAY) as receiver:
        expected = {}
        for n in range(DELIVERIES):
            path = ("/flaky/%d" if n < FLAKY else "/hook/%d") % n
            task_id = "task-%d" % n
            report_completed(task_id, {"config": {"webhooks": [{"url": receiver.url + path}]}}, broker=setup.broker)
            expected[path] = (delivery_id(task_id, COMPLETED, receiver.url + path), task_id)

        started = time.time()
        commands = [DramatiqCommand(setup.env, tmp_path)]
        try:
            commands[0].worker_pid()
            receiver.wait_until(lambda arrivals: len(arrivals) >= KILL_AFTER, 120, "deliveries before the kill")
            killed = time.time()
            commands[0].kill_worker()
            commands.append(DramatiqCommand(setup.env, tmp_path))
            arrivals = receiver.wait_until(lambda arrivals: _delivered(arrivals) >= set(expected), 240,
                                           "every webhook delivered after the kill")
        finally:
            for command in commands:
                command.stop()

    assert set(_delivered(arrivals)) == set(expected)
    by_path: dict[str, list[Arrival]] = {}
    for arrival in arrivals:
        by_path.setdefault(arrival.path, []).append(arrival)
    for path, seen in by_path.items():
        ident, task_id = expected[path]
        # Every copy of a webhook, duplicate or retry, is the same webhook with the same id.
        assert {arrival.webhook_id for arrival in seen} == {ident}, path
        assert {arrival.body for arrival in seen} == {json.dumps(
            {"event": COMPLETED, "task_id": task_id, "url": REPORT_URL.format(task_id=task_id)},
            separators=(",", ":")).encode()}
    duplicates = sum(len([a for a in seen if a.status == 204]) - 1 for seen in by_path.values())
    # Deliveries in flight when the worker died were sent again: the kill did hit the run.
    assert duplicates >= 1

    gaps = []
    for n in range(FLAKY):
        failed, succeeded = by_path["/flaky/%d" % n][:2]
        assert failed.status == 503
        # A retry is scheduled right after its failed attempt; on a loaded machine the kill may come
        # before that for the last few, which are then sent again at once, and a flaky webhook still in
        # the dead worker's prefetch gets its first attempt from the new one: judge only the retries
        # that were surely waiting in the worker that died.
        if failed.at < killed - 0.5:
            assert succeeded.status == 204
            gaps.append(succeeded.at - failed.at)
    assert len(gaps) >= FLAKY // 2, gaps
    # The retries the dead worker held keep their 30 s schedule (give or take the worker's tick).
    assert min(gaps) >= 30.0
    assert max(gaps) < 45.0, gaps

    last_plain = max(arrival.at for arrival in arrivals if arrival.path.startswith("/hook/"))
    print("\n%s: %d arrivals, %d duplicates; all plain webhooks in %.1f s, %.1f s after the kill; "
          "flaky retry gaps %.2f..%.2f s; total %.1f s" % (
              setup.env["HW_E2E_BROKER"], len(arrivals), duplicates, last_plain - started,
              last_plain - killed, min(gaps), max(gaps), time.time() - started))
