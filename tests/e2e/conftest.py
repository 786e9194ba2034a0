"""A report server made of real processes: uvicorn, `dramatiq` workers and receivers, on real Redis or RabbitMQ."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import urllib3
from urllib3.response import HTTPResponse

from hybiscus_webhooks.sealing import new_key

from ..processes import Process, start_process  # noqa: F401 - fixture
from ..services import namespace, rabbitmq_url, redis_url  # noqa: F401 - fixtures

API_KEY = "e2e_" + "k" * 39
MESSAGE_KEY = new_key()


def free_port() -> int:
    # uvicorn binds by itself, so the port is picked here and released just before; on loopback
    # nothing else races for it in practice.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Stack:
    """Starts the parts of one report server and talks to it over HTTP like a client."""

    namespace: str
    broker_url: str
    redis_url: str
    start: Callable[..., Process]
    tmp_path: Path
    port: int = field(default_factory=free_port)
    http: urllib3.PoolManager = field(default_factory=lambda: urllib3.PoolManager(retries=False, timeout=30))
    processes: list[Process] = field(default_factory=list)

    def _start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Process:
        process = self.start(name, args, env=env)
        self.processes.append(process)
        return process

    @property
    def base_url(self) -> str:
        return "http://127.0.0.1:%d" % self.port

    @property
    def env(self) -> dict[str, str]:
        return {
            "HYBISCUS_WEBHOOKS_SETTINGS": "hybiscus_webhooks_contrib.report_server.webhook_settings",
            "REPORT_SERVER_API_KEYS": API_KEY,
            "REPORT_SERVER_BASE_URL": self.base_url,
            "REPORT_SERVER_BROKER_URL": self.broker_url,
            "REPORT_SERVER_REDIS_URL": self.redis_url,
            "REPORT_SERVER_NAMESPACE": self.namespace,
            # The receivers are on loopback.
            "REPORT_SERVER_ALLOW_PRIVATE_DESTINATIONS": "true",
            # Sealed by the web process, opened by the workers: every process needs the same keys.
            "REPORT_SERVER_MESSAGE_KEYS": MESSAGE_KEY,
        }

    def receiver(self, name: str = "receiver") -> tuple[Process, str]:
        command = [sys.executable, "-m", "hybiscus_webhooks_contrib.receiver", "--port", "0", "--json"]
        process = self._start(name, command)
        return process, json.loads(process.wait_for("listening")[0])["listening"]

    def server(self, factory: str = "starlette_app") -> Process:
        process = self._start("uvicorn", [
            sys.executable, "-m", "uvicorn", "--factory", "hybiscus_webhooks_contrib.report_server.asgi:%s" % factory,
            "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log",
        ], env=self.env)
        # Printed once the socket listens; "Application startup complete" comes before that.
        process.wait_for(r"Uvicorn running on http://127\.0\.0\.1:%d" % self.port)
        return process

    def worker(self, name: str = "worker", *, verbose: bool = False) -> Process:
        # dramatiq 1.x serves Prometheus metrics from every worker command: keep each on its own
        # loopback port and files. 2.x ignores these variables.
        metrics = {"dramatiq_prom_host": "127.0.0.1", "dramatiq_prom_port": str(free_port()),
                   "dramatiq_prom_db": str(self.tmp_path / ("prometheus-" + name))}
        process = self._start(name, [
            sys.executable, "-m", "dramatiq", "hybiscus_webhooks_contrib.report_server.worker",
            "--processes", "1", "--threads", "4", *(["--verbose"] if verbose else []),
        ], env={**self.env, **metrics})
        process.wait_for("Worker process is ready for action")
        return process

    def submit(self, report: dict[str, Any]) -> str:
        # urllib3 1.26 and 2.x alike: no json=, no response.json().
        response = self.http.request("POST", self.base_url + "/api/v1/build-report", body=json.dumps(report).encode(),
                                     headers={"X-API-KEY": API_KEY, "Content-Type": "application/json"})
        assert response.status == 200, response.data
        answer = json.loads(response.data)
        assert answer["status"] == "QUEUED"
        return str(answer["task_id"])

    def status(self, task_id: str) -> dict[str, Any]:
        response = self.http.request("GET", self.base_url + "/api/v1/get-task-status", fields={"task_id": task_id},
                                     headers={"X-API-KEY": API_KEY})
        assert response.status == 200, response.data
        return dict(json.loads(response.data))

    def get_report(self, task_id: str) -> HTTPResponse:
        # As a browser opens it: the key in the query.
        response: HTTPResponse = self.http.request(
            "GET", self.base_url + "/api/v1/get-report", fields={"task_id": task_id, "api_key": API_KEY}
        )
        return response


@pytest.fixture(params=[
    pytest.param("redis", marks=pytest.mark.redis),
    # The web process and the workers share tasks through Redis whatever the broker.
    pytest.param("rabbitmq", marks=[pytest.mark.rabbitmq, pytest.mark.redis]),
])
def stack(
    request: pytest.FixtureRequest, namespace: str, redis_url: str, start_process: Callable[..., Process],  # noqa: F811
    tmp_path: Path,
) -> Iterator[Stack]:
    broker_url = redis_url if request.param == "redis" else request.getfixturevalue("rabbitmq_url")
    stack = Stack(namespace, broker_url, redis_url, start_process, tmp_path)
    yield stack
    # Stopped here, before the cleanup, so that no worker recreates what it removes.
    for process in reversed(stack.processes):
        process.stop()
    _forget(namespace, redis_url, broker_url if request.param == "rabbitmq" else None)


def _forget(namespace: str, redis_url: str, rabbitmq_url: str | None) -> None:  # noqa: F811
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match="*%s*" % namespace))
    if keys:
        client.delete(*keys)
    client.close()
    if rabbitmq_url is not None:
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
        channel = connection.channel()
        for queue in ("render", "webhooks"):
            for suffix in ("", ".DQ", ".XQ"):
                channel.queue_delete("%s.%s%s" % (namespace, queue, suffix))
        connection.close()
