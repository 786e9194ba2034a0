"""The delivery path on real Redis and RabbitMQ brokers with a real Worker and a real receiver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest

from hybiscus_webhooks import install, report_completed, settings
from hybiscus_webhooks.testing import DramatiqClock, Receiver

from .conftest import REPORT_URL, Enqueued, require_service, unique

SECRET = "tok_feedfacecafe"


def redis_broker() -> dramatiq.Broker:
    require_service("Redis", 6379)
    from dramatiq.brokers.redis import RedisBroker

    return RedisBroker(url="redis://127.0.0.1:6379/0", namespace=unique("hw-test"))


def rabbitmq_broker() -> dramatiq.Broker:
    require_service("RabbitMQ", 5672)
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    return RabbitmqBroker(url="amqp://guest:guest@127.0.0.1:5672/%2F")


@pytest.fixture(params=[pytest.param(redis_broker, marks=pytest.mark.redis, id="redis"),
                        pytest.param(rabbitmq_broker, marks=pytest.mark.rabbitmq, id="rabbitmq")])
def real_broker(request: pytest.FixtureRequest, enqueued: Enqueued) -> Iterator[dramatiq.Broker]:
    queue = unique("hw_test")
    # On a RedisBroker the records go to its Redis: under a prefix of this test's own, deleted below.
    prefix = unique("hw-test-records") + ":"
    settings.configure(
        REPORT_URL=REPORT_URL, QUEUE_NAME=queue, RECORDS_KEY_PREFIX=prefix, ALLOW_PRIVATE_DESTINATIONS=True
    )
    broker = request.param()
    broker.add_middleware(enqueued)
    broker.emit_after("process_boot")
    install(broker)
    yield broker
    if hasattr(broker, "channel"):  # RabbitMQ: queues outlive the connection unless deleted.
        for name in (queue, queue + ".DQ", queue + ".XQ"):
            broker.channel.queue_delete(name)
    else:
        # flush_all() leaves the namespace's heartbeats behind, forever: delete everything of it.
        for pattern in (prefix + "*", broker.namespace + ":*"):
            for key in broker.client.scan_iter(pattern):
                broker.client.delete(key)
    broker.close()


def test_a_delivery_that_succeeds_at_once(
    real_broker: dramatiq.Broker, start_worker: Any, receiver: Receiver
) -> None:
    report = {"config": {"webhooks": [{"url": receiver.url + "/ok", "auth_header": SECRET}]}}
    [delivery] = report_completed("task-r1", report, broker=real_broker)
    start_worker(real_broker)
    [request] = receiver.wait_for(1)
    assert json.loads(request.body) == {"event": "report.completed", "task_id": "task-r1",
                                        "url": REPORT_URL.format(task_id="task-r1")}
    assert request.headers["authorization"] == "Bearer " + SECRET
    assert request.headers["webhook-id"] == delivery


def test_a_delivery_that_succeeds_on_its_second_attempt_after_exactly_30_seconds(
    real_broker: dramatiq.Broker, start_worker: Any, enqueued: Enqueued, clock: DramatiqClock, receiver: Receiver
) -> None:
    # The production schedule, unshortened: the clock behind the broker's eta is moved instead.
    receiver.statuses = [503]
    report_completed("task-r2", {"config": {"webhooks": [{"url": receiver.url + "/flaky"}]}}, broker=real_broker)
    start_worker(real_broker)
    receiver.wait_for(1)
    eta = enqueued.wait_for_eta(1)
    assert eta == receiver.requests[0].at + 30_000
    clock.now = eta / 1000
    first, second = receiver.wait_for(2)
    assert second.at - first.at == 30_000
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert [first.status, second.status] == [503, 204]
