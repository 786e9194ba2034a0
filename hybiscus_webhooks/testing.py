"""Helpers for testing an app that uses hybiscus_webhooks.

A recording receiver, a movable Dramatiq clock, a StubBroker with the delivery actor, the deliveries
waiting in it, and the due times of retries. The docs page "Testing your integration" shows them at work.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dramatiq
import dramatiq.common
from dramatiq.brokers.stub import StubBroker

from . import settings
from .delivery import _ENDPOINT_OPTION, ACTOR_NAME, install
from .schemas import Webhook
from .sealing import open_endpoint


@dataclass(frozen=True)
class ReceivedRequest:
    """One request a :class:`Receiver` got: header names are lower case, ``at`` is the receiver's clock."""

    method: str
    path: str
    headers: dict[str, str] = field(repr=False)
    body: bytes
    at: float
    status: int


class Receiver:
    """An HTTP server on loopback that records every request and answers with scripted statuses.

    ``statuses`` are used one per request, in order; once they run out every answer is
    ``default``. ``port`` 0 picks a free one. Use it as a context manager, or call ``start()`` and ``stop()``.
    """

    def __init__(
        self,
        statuses: Iterable[int] = (),
        *,
        default: int = 204,
        response_body: bytes = b"",
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.statuses = list(statuses)
        self.default = default
        self.response_body = response_body
        self.clock = clock
        #: Every request received so far, in order.
        self.requests: list[ReceivedRequest] = []
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return "http://%s:%d" % (str(host), port)

    def start(self) -> Receiver:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Block until ``count`` requests have arrived; raise ``TimeoutError`` after ``timeout`` seconds."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError("Expected %d requests, got %d in %s s." % (count, len(self.requests), timeout))
            return list(self.requests)

    def _answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> int:
        with self._changed:
            status = self.statuses.pop(0) if self.statuses else self.default
            self.requests.append(ReceivedRequest(method, path, headers, body, self.clock(), status))
            self._changed.notify_all()
        return status

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {name.lower(): value for name, value in self.headers.items()}
                status = receiver._answer(self.command, self.path, headers, body)
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/redirected")
                # 1xx, 204 and 304 answers have no body by definition: writing one would leave
                # stray bytes on a kept-alive connection.
                body = b"" if status in (204, 304) or status < 200 else receiver.response_body
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_DELETE = do_PATCH = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


class DramatiqClock:
    """Stands still until moved, in place of the clock behind ``dramatiq.common.current_millis``.

    Dramatiq's brokers and workers read that clock to stamp and release delayed messages, so a
    test can move it to a message's due time instead of waiting for it::

        with DramatiqClock() as clock:
            ...
            clock.advance(30)
    """

    def __init__(self, start: float | None = None) -> None:
        #: The clock's time in seconds; set it to jump there.
        self.now = time.time() if start is None else start
        self._original: Callable[[], float] = time.time

    def time(self) -> float:
        """The clock's time in seconds, like ``time.time()``."""
        return self.now

    def millis(self) -> int:
        """The clock's time in milliseconds, like ``dramatiq.common.current_millis()``."""
        return int(self.now * 1000)

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds

    def __enter__(self) -> DramatiqClock:
        self._original = dramatiq.common.time  # type: ignore[attr-defined]
        dramatiq.common.time = self.time  # type: ignore[attr-defined]
        return self

    def __exit__(self, *exc_info: Any) -> None:
        dramatiq.common.time = self._original  # type: ignore[attr-defined]



def make_stub_broker(**options: Any) -> StubBroker:
    """A new StubBroker with the delivery actor installed, for a test of its own.

    ``options`` go to ``StubBroker`` (``middleware=[...]`` replaces Dramatiq's default middleware, which
    must then include ``Retries``). The broker does not become the global one: pass it to
    ``dramatiq.set_broker`` when the code under test sends through the global broker.
    """
    broker = StubBroker(**options)
    install(broker)
    return broker


@dataclass(frozen=True)
class QueuedDelivery:
    """A delivery waiting on a StubBroker: what each of its attempts will send, and where."""

    id: str
    event: str
    task_id: str
    report_url: str
    webhook: Webhook


def queued_deliveries(broker: StubBroker) -> list[QueuedDelivery]:
    """The deliveries waiting in ``broker``'s delivery queue, in order: those no worker has taken yet."""
    if not isinstance(broker, StubBroker):
        raise TypeError("queued_deliveries() reads a StubBroker's queues, got %s." % type(broker).__name__)
    if ACTOR_NAME not in broker.get_declared_actors():
        raise ValueError("The delivery actor is not installed on this broker: call install(broker) first.")
    queue = broker.queues.get(broker.get_actor(ACTOR_NAME).queue_name)
    found = []
    for raw in list(queue.queue) if queue is not None else []:
        message = dramatiq.Message.decode(raw)
        if message.actor_name == ACTOR_NAME:
            delivery = message.args[0]
            found.append(QueuedDelivery(
                id=delivery["id"], event=delivery["event"], task_id=delivery["task_id"],
                report_url=delivery["report_url"],
                webhook=open_endpoint(message.options[_ENDPOINT_OPTION], settings.get().MESSAGE_KEYS),
            ))
    return found


class RetryWatch(dramatiq.Middleware):
    """Records when each delayed message (a retry) is due, so that a test can move a DramatiqClock there.

    Add it to the broker before the worker starts::

        watch = RetryWatch()
        broker.add_middleware(watch)
        ...
        clock.now = watch.wait_for(1)  # the first retry is due now
    """

    def __init__(self) -> None:
        self.due: list[float] = []
        self._changed = threading.Condition()

    def after_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        if delay:
            with self._changed:
                self.due.append(message.options["eta"] / 1000)
                self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> float:
        """When the ``count``-th delayed message is due (seconds on Dramatiq's clock), once it has been enqueued."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.due) >= count, timeout):
                raise TimeoutError("Expected %d delayed messages, got %d in %s s." % (count, len(self.due), timeout))
            return self.due[count - 1]
