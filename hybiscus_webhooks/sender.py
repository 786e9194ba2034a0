"""One HTTP POST per attempt, with urllib3: no redirects, no retries of its own, bounded in time and size."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import urllib3

from . import __version__, settings

#: The User-Agent of every attempt.
USER_AGENT = "hybiscus-webhooks/%s" % __version__

# Enough connections for each worker thread to keep one open to a receiver.
_POOL_MAXSIZE = 16


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: a status, or the class name of the error that stopped it."""

    status: int | None
    error: str | None
    elapsed: float
    response_head: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def describe(self) -> str:
        return "HTTP %d" % self.status if self.status is not None else str(self.error)


class Sender:
    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_response_bytes: int,
        pool: urllib3.PoolManager | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        # The whole answer must arrive by then, however slowly a receiver drips it.
        self.attempt_limit = connect_timeout + read_timeout
        self.max_response_bytes = max_response_bytes
        self.pool = pool or urllib3.PoolManager(maxsize=_POOL_MAXSIZE, block=False)
        self.clock = clock

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Outcome:
        started = self.clock()
        try:
            response: urllib3.HTTPResponse = self.pool.urlopen(  # type: ignore[assignment]
                "POST", url, body=body, headers=dict(headers), redirect=False, retries=False,
                timeout=self.timeout, preload_content=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            return Outcome(status=None, error=type(exc).__name__, elapsed=self.clock() - started)
        try:
            head = self._read_head(response, deadline=started + self.attempt_limit)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # The status line arrived, so the receiver answered: keep its status with the error.
            return Outcome(status=response.status, error=type(exc).__name__, elapsed=self.clock() - started)
        finally:
            # Closing (not draining) is what keeps a huge or endless answer from costing us.
            response.release_conn() if response.isclosed() else _discard(response)
        return Outcome(status=response.status, error=None, elapsed=self.clock() - started, response_head=head)

    def _read_head(self, response: urllib3.HTTPResponse, *, deadline: float) -> bytes:
        head = bytearray()
        while len(head) < self.max_response_bytes and self.clock() < deadline:
            chunk = response.read(min(1024, self.max_response_bytes - len(head)))
            if not chunk:
                break
            head += chunk
        return bytes(head)


def _discard(response: urllib3.HTTPResponse) -> None:
    response.close()
    response.release_conn()


_lock = threading.Lock()
_sender: tuple[int, Sender] | None = None


def get_sender() -> Sender:
    """The sender of this process, built from the settings on first use and shared by all threads."""
    global _sender
    current = _sender
    if current is None or current[0] != os.getpid():
        with _lock:
            if _sender is None or _sender[0] != os.getpid():
                values = settings.get()
                _sender = (os.getpid(), Sender(
                    connect_timeout=values.CONNECT_TIMEOUT,
                    read_timeout=values.READ_TIMEOUT,
                    max_response_bytes=values.MAX_RESPONSE_BYTES,
                ))
            current = _sender
    return current[1]


def _forget() -> None:
    global _sender
    with _lock:
        _sender = None


settings.on_reload(_forget)
