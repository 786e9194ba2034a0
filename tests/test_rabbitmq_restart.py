"""RabbitMQ stopped and started again while retries wait in the delay queue: none is lost.

A private node (tests/e2e/rabbitmq_node.py) is restarted on the same data directory, as an
operator would restart a server; the shared one is never touched. Dramatiq declares its queues
durable and publishes persistent messages, so the retries come back with their schedule.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from hybiscus_webhooks import install, report_completed, settings
from hybiscus_webhooks.testing import DramatiqClock, Receiver

from .conftest import REPORT_URL, Enqueued, unique
from .e2e.rabbitmq_node import PrivateRabbitmqNode, start_private_node
from .e2e.recorder import Recorder

RETRIES = 200

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRabbitmqNode]:
    started = start_private_node(tmp_path_factory.mktemp("rabbitmq"))
    try:
        yield started
    finally:
        started.stop()  # Kills it if it will not stop.


@pytest.fixture
def broker(node: PrivateRabbitmqNode, enqueued: Enqueued) -> Iterator[Any]:
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, QUEUE_NAME=unique("hw_restart"))
    broker = RabbitmqBroker(url=node.url)
    broker.add_middleware(enqueued)
    broker.add_middleware(Recorder())
    broker.emit_after("process_boot")
    install(broker)
    yield broker
    broker.close()  # After the worker has stopped: the fixtures that use this one end first.


def test_retries_waiting_in_the_delay_queue_survive_a_restart(
    node: PrivateRabbitmqNode, broker: Any, enqueued: Enqueued, clock: DramatiqClock, receiver: Receiver,
    start_worker: Any,
) -> None:
    queue = settings.get().QUEUE_NAME
    [recorder] = [middleware for middleware in broker.middleware if isinstance(middleware, Recorder)]
    receiver.statuses = [503] * RETRIES
    for n in range(RETRIES):
        report_completed("task-%d" % n, {"config": {"webhooks": [{"url": receiver.url + "/hook/%d" % n}]}},
                         broker=broker)
    start_worker(broker, worker_threads=8)
    first = receiver.wait_for(RETRIES, timeout=120)
    enqueued.wait_for_eta(RETRIES, timeout=120)
    # Every first attempt is acknowledged, every retry held unacked by the worker until its eta.
    recorder.wait_until(lambda r: r.acked(queue) == RETRIES and len(r.holds) == RETRIES, 120, "retries held")
    assert node.message_counts()[queue + ".DQ"] == RETRIES

    stopping = time.monotonic()
    node.stop()
    node.start()
    print("\nRabbitMQ node stopped and started again in %.1f s" % (time.monotonic() - stopping))

    assert node.message_counts()[queue + ".DQ"] == RETRIES  # Durable queue, persistent messages.
    clock.now = max(enqueued.etas) / 1000
    requests = receiver.wait_for(2 * RETRIES, timeout=120)
    # Once every retry is released and acknowledged, nothing is left that could arrive later.
    recorder.wait_until(lambda r: r.acked(queue) == 2 * RETRIES and r.acked(queue + ".DQ") == RETRIES, 120,
                        "retries released and acknowledged")
    assert len(receiver.requests) == 2 * RETRIES
    assert any(hold.redelivered for hold in recorder.holds)  # The worker got them back from the restarted node.

    second = requests[RETRIES:]
    assert sorted(request.path for request in second) == sorted(request.path for request in first)
    assert {request.status for request in second} == {204}
    first_at = {request.path: request.at for request in first}
    assert {request.at - first_at[request.path] for request in second} == {30_000}
