"""What the in-process tests of contrib share: the settings they use and a way to wait for the worker."""

from __future__ import annotations

import json
from typing import Any, cast
from urllib.parse import urlencode

import dramatiq
from dramatiq.brokers.stub import StubBroker

from hybiscus_webhooks_contrib.report_server import Pipeline

from ..asgi import Answer, call

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


class Client:
    """The few calls of a test client these tests make, straight on the ASGI app.

    Not starlette's TestClient: on starlette 0.37 its import warns under current anyio.
    """

    def __init__(self, app: Any, headers: dict[str, str] | None = None) -> None:
        self.app = app
        self.headers = dict(headers or {})

    def get(self, path: str, *, params: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> Answer:
        return self._call("GET", path, b"", params, headers)

    def post(self, path: str, *, json_body: Any = None, content: bytes | None = None,
             headers: dict[str, str] | None = None) -> Answer:
        body = content if content is not None else json.dumps(json_body).encode()
        return self._call("POST", path, body, None, {"Content-Type": "application/json", **(headers or {})})

    def _call(self, method: str, path: str, body: bytes, params: dict[str, str] | None,
              headers: dict[str, str] | None) -> Answer:
        path, _, query = path.partition("?")
        if params:
            query = urlencode(params)
        sent = {**self.headers, **(headers or {})}
        raw = [(name.lower().encode(), value.encode()) for name, value in sent.items()]
        return call(self.app, method, path, body, headers=raw, query_string=query.encode())
