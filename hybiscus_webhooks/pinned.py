"""urllib3 connection pools pinned to one vetted IP address, whose reads end by the attempt's deadline.

A pool connects to the address it was made for, never to what a name resolves to later, so a
DNS answer that changes after the address was vetted cannot redirect a webhook. TLS still uses
the host name: it is sent as SNI and the certificate is checked against it.

urllib3 bounds each read of a socket by the read timeout, not the sum of them, so a receiver
that drips its answer a byte at a time could hold a worker thread for hours. The sender sets a
deadline for the attempt with ``Deadline``, and every read of the answer (status line, headers,
body) waits at most until then.
"""

from __future__ import annotations

import http.client
import io
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import urllib3
import urllib3.connection
import urllib3.util

# Enough connections for each worker thread to keep one open to a receiver.
POOL_MAXSIZE = 16
# Pools kept for the most recently used destinations; the least recently used one is closed.
MAX_POOLS = 64

_attempt = threading.local()


class Deadline:
    """``with Deadline(at, clock):`` makes every read of an answer in this thread give up at ``clock() == at``.

    A class rather than a generator: one of these wraps every attempt.
    """

    __slots__ = ("_deadline",)

    def __init__(self, at: float, clock: Callable[[], float]) -> None:
        self._deadline = (at, clock)

    def __enter__(self) -> None:
        _attempt.deadline = self._deadline

    def __exit__(self, *exc_info: object) -> None:
        _attempt.deadline = None


def _remaining() -> float | None:
    current = getattr(_attempt, "deadline", None)
    if current is None:
        return None
    at, clock = current
    return float(at - clock())


class _DeadlineReader(io.RawIOBase):
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        # A SocketIO keeps the socket open while the answer is read, even after the
        # connection has closed its end (an answer with "Connection: close").
        self._io = sock.makefile("rb", buffering=0)
        self._read_timeout = sock.gettimeout()
        # What the socket's timeout is now: most answers are read long before the deadline comes
        # nearer than the read timeout, and setting the same value again is a system call.
        self._timeout = self._read_timeout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        remaining = _remaining()
        if remaining is not None:
            if remaining <= 0:
                raise TimeoutError("The attempt's time limit is up.")
            timeout = remaining if self._read_timeout is None else min(self._read_timeout, remaining)
            if timeout != self._timeout:
                self._sock.settimeout(timeout)
                self._timeout = timeout
        return self._io.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._io.close()
        super().close()


class _Socket:
    """What ``http.client.HTTPResponse`` needs of a socket: a file to read the answer from."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock))


class _DeadlineResponse(http.client.HTTPResponse):
    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(_Socket(sock), *args, **kwargs)  # type: ignore[arg-type]


# Header names that http.client has accepted, each with its line's start: b"Name: ".
_HEADER_STARTS: dict[str, bytes] = {}
_MAX_HEADER_NAMES = 64


class _LeanHeaders:
    """``putheader`` that writes a header http.client has seen before without checking it again.

    http.client runs two regular expressions and urllib3 a generator for every header of every
    request, about 13,000 instructions a header. The sender has already checked each name it
    passes (an HTTP token) and each value (visible ASCII; ``sender._check``), and urllib3's own
    headers are constants and digits. A name is written without a check once http.client has
    accepted it; a value, when it is one printable string. Anything else takes http.client's way,
    checks and errors included, and so does urllib3's SKIP_HEADER. (Nor does the short way check
    that a request has been started: urllib3 starts one before its headers.)
    """

    def putheader(self, header: str, *values: str) -> None:
        start = _HEADER_STARTS.get(header)
        if start is not None and len(values) == 1:
            value = values[0]
            if type(value) is str and value.isprintable() and value != urllib3.util.SKIP_HEADER:
                self._output(start + value.encode("latin-1"))  # type: ignore[attr-defined]
                return
        super().putheader(header, *values)  # type: ignore[misc]
        if start is None and type(header) is str and len(_HEADER_STARTS) < _MAX_HEADER_NAMES:
            _HEADER_STARTS[header] = header.encode("ascii") + b": "


# urllib3 narrows http.client's putheader to strings as well.
class _LeanHTTPConnection(_LeanHeaders, urllib3.connection.HTTPConnection):  # type: ignore[misc]
    pass


class _LeanHTTPSConnection(_LeanHeaders, urllib3.connection.HTTPSConnection):  # type: ignore[misc]
    pass


# The pools keep whatever connection class a test library put in place of urllib3's (a recorder
# sees every request). urllib3's own is swapped for the one with lean headers, and the answers
# of either are read by ``_DeadlineResponse``.
_LEAN = {
    urllib3.connection.HTTPConnection: _LeanHTTPConnection,
    urllib3.connection.HTTPSConnection: _LeanHTTPSConnection,
}


def _adopt(connection: Any) -> Any:
    lean = _LEAN.get(type(connection))
    if lean is not None:
        connection.__class__ = lean  # Same layout: a subclass that only adds a method.
    connection.response_class = _DeadlineResponse
    return connection


class _HTTPPool(urllib3.HTTPConnectionPool):
    def _new_conn(self) -> Any:
        return _adopt(super()._new_conn())


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    def _new_conn(self) -> Any:
        return _adopt(super()._new_conn())


PoolKey = tuple[str, str, int, str]


class Pools:
    """One pool per (scheme, address, port, host name), the least recently used closed beyond ``MAX_POOLS``."""

    def __init__(self, *, timeout: urllib3.Timeout, ca_bundle: str | None) -> None:
        self.timeout = timeout
        self.ca_bundle = ca_bundle
        self._pools: OrderedDict[PoolKey, urllib3.HTTPConnectionPool] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, scheme: str, address: str, port: int, hostname: str) -> urllib3.HTTPConnectionPool:
        key = (scheme, address, port, hostname)
        with self._lock:
            pool = self._pools.get(key)
            if pool is not None:
                self._pools.move_to_end(key)
                return pool
            pool = self._pools[key] = self._make(*key)
            if len(self._pools) > MAX_POOLS:
                self._pools.popitem(last=False)[1].close()
            return pool

    def _make(self, scheme: str, address: str, port: int, hostname: str) -> urllib3.HTTPConnectionPool:
        host = "[%s]" % address if ":" in address else address
        options: dict[str, Any] = {"timeout": self.timeout, "maxsize": POOL_MAXSIZE, "block": False, "retries": False}
        if scheme == "https":
            # server_hostname is both the SNI and the name the certificate must match, on urllib3 1.26 and 2.x.
            return _HTTPSPool(
                host, port, cert_reqs="CERT_REQUIRED", ca_certs=self.ca_bundle, server_hostname=hostname, **options
            )
        return _HTTPPool(host, port, **options)

    def clear(self) -> None:
        with self._lock:
            while self._pools:
                self._pools.popitem()[1].close()
