from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware

from hybiscus_webhooks import settings
from hybiscus_webhooks.testing import DramatiqClock, Receiver

REPORT_URL = "https://reports.example.com/api/v1/get-report?task_id={task_id}"
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(autouse=True)
def configured() -> Iterator[None]:
    # The receivers of the tests listen on loopback, which the sender refuses by default.
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True)
    yield
    settings.reload()


class Enqueued(Middleware):
    """Records each delayed enqueue, so a test can wait for a retry to be scheduled and move the clock to it."""

    def __init__(self) -> None:
        self.etas: list[int] = []
        self._changed = threading.Condition()

    def after_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        if delay:
            with self._changed:
                self.etas.append(message.options["eta"])
                self._changed.notify_all()

    def wait_for_eta(self, count: int, timeout: float = 10.0) -> int:
        """The eta of the ``count``-th delayed message, once it has been enqueued."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.etas) >= count, timeout):
                raise TimeoutError("Expected %d delayed messages, got %d." % (count, len(self.etas)))
            return self.etas[count - 1]


@pytest.fixture
def enqueued() -> Enqueued:
    return Enqueued()


@pytest.fixture
def stub_broker(enqueued: Enqueued) -> Iterator[StubBroker]:
    broker = StubBroker()
    broker.add_middleware(enqueued)
    broker.emit_after("process_boot")
    yield broker
    broker.flush_all()
    broker.close()


@pytest.fixture
def clock() -> Iterator[DramatiqClock]:
    with DramatiqClock() as moved:
        yield moved


@pytest.fixture
def start_worker() -> Iterator[Any]:
    workers: list[dramatiq.Worker] = []

    def start(broker: dramatiq.Broker, **options: Any) -> dramatiq.Worker:
        # A short poll interval makes the worker release due delayed messages promptly.
        options.setdefault("worker_timeout", 50)
        worker = dramatiq.Worker(broker, **options)
        worker.start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def receiver(clock: DramatiqClock) -> Iterator[Receiver]:
    with Receiver(clock=clock.millis) as started:
        yield started


def service_is_up(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def require_service(name: str, port: int) -> None:
    if not service_is_up(port):
        if IN_CI:
            pytest.fail("%s is not reachable on 127.0.0.1:%d, and CI must run every test." % (name, port))
        pytest.skip("%s is not reachable on 127.0.0.1:%d" % (name, port))


def unique(prefix: str) -> str:
    return "%s_%s" % (prefix, uuid.uuid4().hex[:12])
