"""Helpers for testing an app that uses hybiscus_webhooks: a recording receiver and a movable Dramatiq clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dramatiq.common


@dataclass(frozen=True)
class ReceivedRequest:
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
        self._thread = threading.Thread(target=self._server.serve_forever, name="receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
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
        self.now = time.time() if start is None else start
        self._original: Callable[[], float] = time.time

    def time(self) -> float:
        return self.now

    def millis(self) -> int:
        return int(self.now * 1000)

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def __enter__(self) -> DramatiqClock:
        self._original = dramatiq.common.time  # type: ignore[attr-defined]
        dramatiq.common.time = self.time  # type: ignore[attr-defined]
        return self

    def __exit__(self, *exc_info: Any) -> None:
        dramatiq.common.time = self._original  # type: ignore[attr-defined]

