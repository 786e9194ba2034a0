"""A receiver on loopback that takes its time: each request is recorded on arrival, answered after a delay.

Paths under ``/flaky/`` fail (503) the first time they are seen and succeed afterwards; every other
path succeeds (204). A request whose sender dies while waiting for the answer is still recorded,
as a real receiver would have acted on it; one torn off before its body arrived is not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Arrival:
    path: str
    webhook_id: str
    body: bytes
    status: int
    at: float = field(compare=False)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # A sender killed mid-request breaks the pipe: expected here.


class SlowReceiver:
    def __init__(self, *, delay: float) -> None:
        self.delay = delay
        self.arrivals: list[Arrival] = []
        self._seen: set[str] = set()
        self._changed = threading.Condition()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, name="slow-receiver", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return "http://%s:%d" % (str(host), port)

    def __enter__(self) -> SlowReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()

    def wait_until(self, condition: Callable[[list[Arrival]], bool], timeout: float, what: str) -> list[Arrival]:
        with self._changed:
            if not self._changed.wait_for(lambda: condition(self.arrivals), timeout):
                raise TimeoutError("%s: not within %s s (%d requests so far)." % (what, timeout, len(self.arrivals)))
            return list(self.arrivals)

    def _record(self, path: str, webhook_id: str, body: bytes) -> int:
        with self._changed:
            status = 503 if path.startswith("/flaky/") and path not in self._seen else 204
            self._seen.add(path)
            self.arrivals.append(Arrival(path, webhook_id, body, status, time.time()))
            self._changed.notify_all()
        return status

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:
                    return  # Torn off by a sender that died mid-request: no receiver would act on it.
                status = receiver._record(self.path, self.headers.get("webhook-id", ""), body)
                time.sleep(receiver.delay)  # The slow part of a slow receiver.
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
