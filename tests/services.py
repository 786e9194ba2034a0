"""Real Redis and RabbitMQ for the contrib and end-to-end tests; each skips when its service is down, except in CI.

Import the fixtures into a conftest.py to use them.
"""

from __future__ import annotations

import pytest

from .conftest import require_service, unique

REDIS_URL = "redis://127.0.0.1:6379/0"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


@pytest.fixture(scope="session")
def redis_url() -> str:
    require_service("Redis", 6379)
    return REDIS_URL


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    require_service("RabbitMQ", 5672)
    return RABBITMQ_URL


@pytest.fixture
def namespace() -> str:
    """Names no other test, and no other suite on the same servers, uses for its queues and keys."""
    return unique("hwc")
