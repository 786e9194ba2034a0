"""Listeners on loopback that count what reaches them and misbehave on request, and a guard that
keeps every other connection from leaving the machine."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

#: Behaviour of a listener for one accepted connection: it gets the connection and a stop event.
Handler = Callable[["Connection"], None]


@dataclass
class Connection:
    sock: socket.socket
    stop: threading.Event
    request: bytes = b""
    sent: int = 0
    server_name: str | None = None
    on_request: Callable[[], None] | None = None

    def read_request(self) -> bytes:
        """Read a request's head and its Content-Length body; what arrived is kept in ``request``."""
        data = bytearray()
        while b"\r\n\r\n" not in data:
            chunk = self._recv()
            if not chunk:
                return bytes(data)
            data += chunk
        head, _, body = bytes(data).partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = self._recv()
            if not chunk:
                break
            body += chunk
        self.request = head + b"\r\n\r\n" + body
        if self.on_request is not None:
            self.on_request()
        return self.request

    def _recv(self) -> bytes:
        self.sock.settimeout(0.05)
        while not self.stop.is_set():
            try:
                return self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return b""
        return b""

    def send(self, data: bytes) -> bool:
        """Send all of ``data``; False once the peer is gone or the listener stops."""
        if self.stop.is_set():
            return False
        try:
            self.sock.settimeout(5)
            self.sock.sendall(data)
        except OSError:
            return False
        self.sent += len(data)
        return True

    def wait(self, seconds: float | None = None) -> None:
        self.stop.wait(seconds)


class Listener:
    """Accepts on 127.0.0.1 and [::1] at the same port (or on ``hosts`` at ``port``), counts accepts,
    runs ``handler`` per connection.

    With ``tls`` (a server SSLContext), each connection is wrapped first; a failed handshake is
    counted in ``tls_failures``.
    """

    def __init__(self, handler: Handler | None = None, *, tls: ssl.SSLContext | None = None,
                 clock: Callable[[], float] = time.time, hosts: tuple[str, ...] = ("127.0.0.1", "::1"),
                 port: int = 0) -> None:
        self.handler = handler or answer(204)
        self.tls = tls
        self.clock = clock
        self.connections: list[Connection] = []
        self.accepted_at: list[float] = []
        self.requested_at: list[float] = []
        self.tls_failures = 0
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._sockets = self._bind(hosts, port)
        self.port = self._sockets[0].getsockname()[1]

    @property
    def accepts(self) -> int:
        return len(self.accepted_at)

    def url(self, host: str = "127.0.0.1", scheme: str = "http", path: str = "/hook") -> str:
        return "%s://%s:%d%s" % (scheme, host, self.port, path)

    @staticmethod
    def _bind(hosts: tuple[str, ...], port: int) -> list[socket.socket]:
        for _ in range(20):
            bound: list[socket.socket] = []
            try:
                for host in hosts:
                    listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
                    bound.append(listening)
                    listening.bind((host, port or (bound[0].getsockname()[1] if len(bound) > 1 else 0)))
            except OSError:
                for listening in bound:
                    listening.close()
                if port:
                    raise
                continue
            for listening in bound:
                listening.listen(64)
                listening.settimeout(0.05)
            return bound
        raise RuntimeError("no port free on all of %s" % (hosts,))

    def __enter__(self) -> Listener:
        for listening in self._sockets:
            thread = threading.Thread(target=self._accept, args=(listening,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        for connection in self.connections:
            try:
                # The base class's shutdown, which also wakes a thread blocked on a TLS socket.
                socket.socket.shutdown(connection.sock, socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in list(self._threads):
            thread.join(10)
        for connection in self.connections:
            connection.sock.close()
        for listening in self._sockets:
            listening.close()

    def wait_for(self, accepts: int, timeout: float = 10.0) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self.accepts >= accepts, timeout):
                raise TimeoutError("Expected %d connections, got %d." % (accepts, self.accepts))

    def wait_for_requests(self, requests: int, timeout: float = 10.0) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.requested_at) >= requests, timeout):
                raise TimeoutError("Expected %d requests, got %d." % (requests, len(self.requested_at)))

    def _accept(self, listening: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = listening.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection = Connection(sock, self._stop, on_request=self._requested)
            with self._changed:
                self.accepted_at.append(self.clock())
                self.connections.append(connection)
                self._changed.notify_all()
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _requested(self) -> None:
        with self._changed:
            self.requested_at.append(self.clock())
            self._changed.notify_all()

    def _serve(self, connection: Connection) -> None:
        if self.tls is not None:
            try:
                connection.sock.settimeout(5)
                connection.sock = self.tls.wrap_socket(connection.sock, server_side=True)
                connection.server_name = getattr(connection.sock, "sni", None)
            except (OSError, ssl.SSLError):
                with self._changed:
                    self.tls_failures += 1
                return
        try:
            self.handler(connection)
        except OSError:
            pass


def tls_context(certificate: Any) -> ssl.SSLContext:
    """A server context that serves ``certificate`` (a trustme LeafCert) and records the SNI it was asked for."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    certificate.configure_cert(context)

    def remember(sock: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
        sock.sni = name  # type: ignore[attr-defined]

    context.sni_callback = remember  # type: ignore[assignment]
    return context


def answer(status: int, body: bytes = b"", headers: bytes = b"") -> Handler:
    def handle(connection: Connection) -> None:
        while connection.read_request():
            head = b"HTTP/1.1 %d Hmm\r\nContent-Length: %d\r\n%s\r\n" % (status, len(body), headers)
            if not connection.send(head + body):
                return

    return handle


def hang(connection: Connection) -> None:
    connection.read_request()
    connection.wait()


def drip(status: int, interval: float) -> Handler:
    """Headers at once, then the body one byte per ``interval``."""
    def handle(connection: Connection) -> None:
        connection.read_request()
        connection.send(b"HTTP/1.1 %d OK\r\nContent-Length: 100000\r\n\r\n" % status)
        while connection.send(b"x"):
            connection.wait(interval)

    return handle


def drip_then_silence(interval: float, count: int) -> Handler:
    """Headers at once, ``count`` bytes of the body one per ``interval``, then nothing, the connection open."""
    def handle(connection: Connection) -> None:
        connection.read_request()
        connection.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        for _ in range(count):
            connection.wait(interval)
            if not connection.send(b"x"):
                return
        connection.wait()  # Until the listener stops.

    return handle


def drip_headers(interval: float) -> Handler:
    """A status line, then header bytes one per ``interval``, never the end of the headers."""
    def handle(connection: Connection) -> None:
        connection.read_request()
        connection.send(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while connection.send(b"x"):
            connection.wait(interval)

    return handle


def endless_continue(interval: float) -> Handler:
    def handle(connection: Connection) -> None:
        connection.read_request()
        while connection.send(b"HTTP/1.1 100 Continue\r\n\r\n"):
            connection.wait(interval)

    return handle


GIGABYTE = 1 << 30
_ZEROS = bytes(1 << 16)


def huge(status: int, *, chunked: bool = False, size: int = GIGABYTE) -> Handler:
    """An answer of ``size`` bytes (Content-Length, or chunked), sent as fast as the peer takes it."""
    def handle(connection: Connection) -> None:
        connection.read_request()
        framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % size
        if not connection.send(b"HTTP/1.1 %d OK\r\n%s\r\n\r\n" % (status, framing)):
            return
        chunk = b"%x\r\n%s\r\n" % (len(_ZEROS), _ZEROS) if chunked else _ZEROS
        while connection.sent < size and connection.send(chunk):
            pass

    return handle


def endless_header(connection: Connection) -> None:
    connection.read_request()
    connection.send(b"HTTP/1.1 200 OK\r\nX-Long: ")
    while connection.sent < GIGABYTE and connection.send(b"a" * 65536):
        pass


def garbage(connection: Connection) -> None:
    connection.read_request()
    connection.send(b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff\xfe binary \x89PNG\r\n\r\n")
    connection.wait()


def close_mid_response(connection: Connection) -> None:
    connection.read_request()
    connection.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
    connection.sock.shutdown(socket.SHUT_RDWR)


def close_before_answer(connection: Connection) -> None:
    connection.read_request()
    connection.sock.shutdown(socket.SHUT_RDWR)


def redirect(status: int, location: str) -> Handler:
    return answer(status, headers=b"Location: %s\r\n" % location.encode())


# ---- A guard that keeps connections on loopback ------------------------------------------------


def _is_loopback(address: Any) -> bool:
    if not isinstance(address, tuple):
        return True  # A Unix socket.
    try:
        ip = ipaddress.ip_address(str(address[0]).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


@dataclass
class Guard:
    """Every connect() of the test, those kept from leaving loopback, and every name looked up."""

    connects: list[Any] = field(default_factory=list)
    blocked: list[Any] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """The lookups that were names, not IP addresses (which need no resolver)."""
        return [host for host in self.lookups if not _is_address(host)]


def _is_address(host: Any) -> bool:
    try:
        ipaddress.ip_address(str(host).strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


@contextmanager
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[Guard]:
    """Refuse (before any packet) every connection that is not to a loopback address, and record it.

    The tests never reach another address, not even to show that it is refused.
    """
    guard = Guard()
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_getaddrinfo = socket.getaddrinfo

    def connect(sock: socket.socket, address: Any) -> None:
        guard.connects.append(address)
        if not _is_loopback(address):
            guard.blocked.append(address)
            raise ConnectionRefusedError("the test guard keeps connections on loopback: %r" % (address,))
        original_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        guard.connects.append(address)
        if not _is_loopback(address):
            guard.blocked.append(address)
            return 111
        return original_connect_ex(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        guard.lookups.append(host)
        return original_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield guard
