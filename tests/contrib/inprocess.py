"""What the in-process tests of contrib share: the settings they use and a way to wait for the worker."""

from __future__ import annotations

from typing import cast

import dramatiq
from dramatiq.brokers.stub import StubBroker

from hybiscus_webhooks_contrib.report_server import Pipeline

REPORT_URL = "http://testserver/api/v1/get-report?task_id={task_id}"
RENDER_QUEUE = "test.render"
WEBHOOK_QUEUE = "test.webhooks"


def run_worker_until_idle(pipeline: Pipeline) -> None:
    """Start a worker, wait until the render and webhook queues are empty, stop it.

    Failed renders are expected in these tests, so they must not raise.
    """
    broker = cast(StubBroker, pipeline.broker)
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=2)
    worker.start()
    try:
        for queue in (RENDER_QUEUE, WEBHOOK_QUEUE):
            broker.join(queue, fail_fast=False, timeout=10_000)
        worker.join()
    finally:
        worker.stop()
