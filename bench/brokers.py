"""Brokers for the benchmarks: the same construction in the bench process and in the worker it starts."""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.middleware import default_middleware

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def make_broker(config: dict[str, Any]) -> dramatiq.Broker:
    """A broker from ``{"broker": "redis" | "rabbitmq" | "stub", "url": ..., "namespace": ...}``.

    Prometheus (a default middleware of dramatiq 1.x) is left out: it would open a port in every worker.
    """
    middleware = [factory() for factory in default_middleware if factory.__name__ != "Prometheus"]
    kind = config["broker"]
    if kind == "redis":
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=config["url"], namespace=config["namespace"], middleware=middleware)
    if kind == "rabbitmq":
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=config.get("url") or RABBITMQ_URL, middleware=middleware)
    if kind == "stub":
        from dramatiq.brokers.stub import StubBroker

        return StubBroker(middleware=middleware)
    raise ValueError("broker must be redis, rabbitmq or stub, got %r" % kind)


def delete_queues(broker: dramatiq.Broker, queues: list[str]) -> None:
    """Remove what a run left: RabbitMQ queues outlive connections; Redis keys of our namespace only."""
    if hasattr(broker, "channel"):
        for queue in queues:
            for name in (queue, queue + ".DQ", queue + ".XQ"):
                broker.channel.queue_delete(name)
    elif hasattr(broker, "client"):
        client = broker.client
        for key in client.scan_iter(match=broker.namespace + ":*", count=1000):
            client.delete(key)
