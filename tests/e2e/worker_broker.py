"""The broker module of the tests' worker processes: ``dramatiq tests.e2e.worker_broker``.

The test that starts the worker names the broker, its URL and its isolation in the environment.
"""

import os

import dramatiq

import hybiscus_webhooks


def _broker() -> dramatiq.Broker:
    url = os.environ["HW_E2E_URL"]
    if os.environ["HW_E2E_BROKER"] == "redis":
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(
            url=url,
            namespace=os.environ["HW_E2E_NAMESPACE"],
            heartbeat_timeout=int(os.environ["HW_E2E_HEARTBEAT_TIMEOUT"]),
            maintenance_chance=int(os.environ["HW_E2E_MAINTENANCE_CHANCE"]),
        )
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    return RabbitmqBroker(url=url)


broker = _broker()
dramatiq.set_broker(broker)
hybiscus_webhooks.install(broker)
