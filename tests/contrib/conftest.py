from __future__ import annotations

from collections.abc import Iterator

import pytest
from dramatiq.brokers.stub import StubBroker

from hybiscus_webhooks import settings
from hybiscus_webhooks.testing import Receiver
from hybiscus_webhooks_contrib.report_server import MemoryTaskStore, Pipeline, build_pipeline

from ..processes import start_process  # noqa: F401 - fixture
from ..services import namespace, redis_url  # noqa: F401 - fixtures
from .inprocess import RENDER_QUEUE, REPORT_URL, WEBHOOK_QUEUE


@pytest.fixture
def webhook_settings() -> Iterator[None]:
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, QUEUE_NAME=WEBHOOK_QUEUE)
    yield
    settings.reload()


@pytest.fixture
def pipeline(webhook_settings: None) -> Iterator[Pipeline]:
    broker = StubBroker()
    broker.emit_after("process_boot")
    built = build_pipeline(broker, MemoryTaskStore(ttl=60), render_queue=RENDER_QUEUE)
    yield built
    broker.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver
