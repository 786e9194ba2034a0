"""One HTTP POST per attempt, with urllib3: to a vetted address, no redirects, no retries of its own,
bounded in time and size.
"""

from __future__ import annotations

import concurrent.futures
import functools
import http.client
import ipaddress
import queue
import re
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import urllib3

from . import __version__, settings
from .destinations import Address, AddressPolicy, InvalidHost, ascii_host, ip_literal
from .errors import DestinationRefused, UnsafeHeader
from .pinned import Deadline, Pools

#: The User-Agent of every attempt.
USER_AGENT = "hybiscus-webhooks/%s" % __version__

#: Called with (host, port); returns the host's addresses as strings.
Resolver = Callable[[str, int], Sequence[str]]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Visible ASCII and spaces: a CR or LF would let a value add headers or a second request.
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")
# Header names found to be tokens: every attempt sends the same few.
_TOKENS: set[str] = set()
_MAX_TOKENS = 64
_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f]")
_URL_SAFE = "".join(chr(code) for code in range(0x21, 0x7F))
#: Public addresses only: the policy without any setting.
STRICT = AddressPolicy()

# Host names whose vetted addresses a sender keeps (the oldest lookup is dropped beyond).
MAX_CACHED_HOSTS = 1024

_REFUSAL_HINT = "webhooks go only to public addresses unless ALLOW_PRIVATE_DESTINATIONS or ALLOWED_NETWORKS say so"


def resolve(host: str, port: int) -> list[str]:
    """Every address of ``host``, in the resolver's order, without repeats."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _Lookups:
    """Runs the resolver on threads of its own, so that an attempt waits for an answer no longer than
    its connect timeout: getaddrinfo cannot be interrupted, and a silent DNS server holds it 30 s or more.

    A lookup given up on still holds its thread until the resolver returns; with every thread held,
    new lookups wait in line and time out unrun, so the cost stays bounded. Idle threads end.
    """

    def __init__(self, resolver: Resolver, *, threads: int = 8, idle_seconds: float = 60.0) -> None:
        self._resolver = resolver
        self._threads = threads
        self._idle_seconds = idle_seconds
        self._started = 0
        self._idle = 0
        self._jobs: queue.SimpleQueue[tuple[concurrent.futures.Future[Sequence[str]], str, int]] = queue.SimpleQueue()
        self._lock = threading.Lock()

    def resolve(self, host: str, port: int, timeout: float) -> Sequence[str]:
        """The resolver's answer; raises ``TimeoutError`` after ``timeout`` seconds without one."""
        job: concurrent.futures.Future[Sequence[str]] = concurrent.futures.Future()
        self._jobs.put((job, host, port))
        with self._lock:
            if self._idle == 0 and self._started < self._threads:
                self._started += 1
                # A daemon: a lookup that never returns must not keep the worker from exiting.
                threading.Thread(target=self._work, name="hybiscus-webhooks-lookup", daemon=True).start()
        try:
            return job.result(timeout)
        except concurrent.futures.TimeoutError:
            job.cancel()  # Never run if no thread has taken it yet.
            raise TimeoutError("no answer for %s in %g s" % (host, timeout)) from None

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            try:
                job, host, port = self._jobs.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:
                    self._idle -= 1
                    self._started -= 1
                return
            with self._lock:
                self._idle -= 1
            if job.set_running_or_notify_cancel():
                try:
                    job.set_result(self._resolver(host, port))
                except BaseException as exc:  # Handed to the attempt waiting for it.
                    job.set_exception(exc)


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: a status, and the class name of the error that stopped it, if any."""

    status: int | None
    error: str | None
    elapsed: float
    response_head: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        """A 2xx answer whose head (up to the size cap) arrived whole and in time."""
        return self.status is not None and 200 <= self.status < 300 and self.error is None

    def describe(self) -> str:
        if self.status is None:
            return str(self.error)
        return "HTTP %d" % self.status if self.error is None else "HTTP %d, then %s" % (self.status, self.error)


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    # The path and query: a query may carry a customer's token, and targets are kept per URL.
    request_uri: str = field(repr=False)
    host_header: str = field(init=False)

    def __post_init__(self) -> None:
        name = "[%s]" % self.host if ":" in self.host else self.host
        header = name if self.port == _DEFAULT_PORTS[self.scheme] else "%s:%d" % (name, self.port)
        object.__setattr__(self, "host_header", header)  # Once per URL: targets are kept.


class Sender:
    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_response_bytes: int,
        policy: AddressPolicy = STRICT,
        https_only: bool = False,
        ca_bundle: str | None = None,
        resolver: Resolver = resolve,
        dns_cache_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        # The whole answer must arrive by then, however slowly a receiver drips it.
        self.attempt_limit = connect_timeout + read_timeout
        self.max_response_bytes = max_response_bytes
        self.policy = policy
        self.https_only = https_only
        self.resolver = resolver
        self.lookups = _Lookups(resolver)
        self.dns_cache_seconds = dns_cache_seconds
        # (host, port) -> (monotonic time the entry expires, the addresses vetted then, as text). Only
        # vetted addresses are kept, so a later answer (a rebinding) can change nothing but when one is
        # used. Ordered by lookup, oldest first; an OrderedDict drops its first key at once, where a plain
        # dict walks the slots of the keys dropped before.
        self._resolved: OrderedDict[tuple[str, int], tuple[float, tuple[str, ...]]] = OrderedDict()
        self._resolved_lock = threading.Lock()
        self.connect_timeout = connect_timeout
        self.clock = clock
        self.pools = Pools(timeout=self.timeout, ca_bundle=ca_bundle)

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Outcome:
        """One attempt. Raises ``DestinationRefused`` when the URL or its addresses are not allowed."""
        _check(headers)
        target = _target_of(url)
        if self.https_only and target.scheme != "https":
            raise DestinationRefused("HTTPS_ONLY is set, and the webhook URL for host %s is not https." % target.host)
        started = self.clock()
        try:
            addresses = self._vetted(target, started)
        except TimeoutError:
            return Outcome(status=None, error="NameResolutionTimeout", elapsed=self.clock() - started)
        except (OSError, UnicodeError):
            return Outcome(status=None, error="NameResolutionError", elapsed=self.clock() - started)
        outcome = self._send(target, addresses, body, {**headers, "Host": target.host_header}, started)
        if not outcome.ok:
            self._forget(target)  # It may have moved: the next attempt resolves the name again.
        return outcome

    def _send(self, target: _Target, addresses: Sequence[str], body: bytes, headers: Mapping[str, str],
              started: float) -> Outcome:
        """The request to the first of ``addresses`` that takes the connection."""
        with Deadline(started + self.attempt_limit, self.clock):
            for index, address in enumerate(addresses):
                pool = self.pools.get(target.scheme, address, target.port, target.host)
                try:
                    response: urllib3.HTTPResponse = pool.urlopen(  # type: ignore[assignment]
                        "POST", target.request_uri, body=body, headers=headers, redirect=False, retries=False,
                        timeout=self.timeout, preload_content=False, decode_content=False, assert_same_host=False,
                        # An answer cut short of its Content-Length is an error (urllib3 1.26 lets it pass).
                        enforce_content_length=True,
                    )
                except urllib3.exceptions.NewConnectionError as exc:
                    # Refused or unreachable: the next address may answer, as a browser would try it.
                    if index + 1 < len(addresses) and self.clock() < started + self.attempt_limit:
                        continue
                    return Outcome(status=None, error=type(exc).__name__, elapsed=self.clock() - started)
                except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
                    return Outcome(status=None, error=type(exc).__name__, elapsed=self.clock() - started)
                return self._finish(response, started)
        raise AssertionError("unreachable: _vetted returns at least one address")

    def _finish(self, response: urllib3.HTTPResponse, started: float) -> Outcome:
        head = bytearray()
        try:
            # Until the cap or the end of the answer: a read can return less than asked for, and
            # only the read that finds the end tells an answer cut short from a complete one.
            while len(head) < self.max_response_bytes:
                # Raw bytes: decompressing a receiver's answer could cost far more than its size.
                chunk = response.read(self.max_response_bytes - len(head), decode_content=False)
                if not chunk:
                    break
                head += chunk
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
            # The status line arrived, so the receiver answered: keep its status with the error.
            return Outcome(status=response.status, error=type(exc).__name__, elapsed=self.clock() - started)
        finally:
            # Closing (not draining) is what keeps a huge or endless answer from costing us.
            response.release_conn() if response.isclosed() else _discard(response)
        return Outcome(status=response.status, error=None, elapsed=self.clock() - started, response_head=bytes(head))

    def _vetted(self, target: _Target, now: float) -> Sequence[str]:
        """The addresses of the target host, all allowed, as text; raises ``DestinationRefused`` if any is not.

        A host name's addresses are kept for ``dns_cache_seconds`` once vetted: a worker sends to the
        same few hosts over and over, and a lookup cost more than the rest of an attempt's own work
        (bench/README.md). Until a failed attempt drops them, they are used as they were vetted.
        """
        literal = ip_literal(target.host)
        if literal is not None:
            reason = self.policy.refusal(literal)
            if reason is not None:
                raise DestinationRefused("Host %s is a %s address; %s." % (target.host, reason, _REFUSAL_HINT))
            return [str(literal)]
        key = (target.host, target.port)
        cached = self._resolved.get(key)
        if cached is not None and now < cached[0]:
            return cached[1]
        addresses = tuple(str(address) for address in self._resolve(target))
        if self.dns_cache_seconds > 0:
            with self._resolved_lock:
                self._resolved[key] = (now + self.dns_cache_seconds, addresses)
                self._resolved.move_to_end(key)  # The first key is the oldest lookup.
                if len(self._resolved) > MAX_CACHED_HOSTS:
                    self._resolved.popitem(last=False)
        return addresses

    def _forget(self, target: _Target) -> None:
        if self._resolved:
            with self._resolved_lock:
                self._resolved.pop((target.host, target.port), None)

    def _resolve(self, target: _Target) -> list[Address]:
        addresses = []
        # Resolving is part of connecting: it gets the connect timeout, and counts in the attempt's time.
        for answer in self.lookups.resolve(target.host, target.port, self.connect_timeout):
            try:
                address = ipaddress.ip_address(answer)
            except ValueError:
                raise DestinationRefused(
                    "The resolver answered %r for host %s, which is not an IP address." % (answer, target.host)
                ) from None
            reason = self.policy.refusal(address)
            if reason is not None:
                raise DestinationRefused(
                    "Host %s resolves to %s, a %s address; %s." % (target.host, address, reason, _REFUSAL_HINT)
                )
            addresses.append(address)
        if not addresses:
            raise socket.gaierror("no address")
        return addresses


# A worker sends to the same few URLs over and over: each is parsed once, up to this many (a URL
# refused here raises each time, and is not kept).
@functools.lru_cache(maxsize=1024)
def _target_of(url: str) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or _URL_UNSAFE.search(url):
            raise ValueError
        host = ascii_host(parts.hostname or "")
    except (ValueError, InvalidHost):
        raise DestinationRefused(
            "The webhook URL is not an http or https URL with a valid host and no spaces or control characters."
        ) from None
    path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    return _Target(scheme, host, port or _DEFAULT_PORTS[scheme], quote(path, safe=_URL_SAFE))


def _check(headers: Mapping[str, str]) -> None:
    try:
        # The values at once: strings are all visible ASCII exactly when their concatenation is.
        if headers.keys() <= _TOKENS and _HEADER_VALUE.fullmatch("".join(headers.values())):
            return
    except TypeError:  # A value that is not a string: found and named below.
        pass
    for name, value in headers.items():
        if name not in _TOKENS:
            if not _HEADER_NAME.fullmatch(name):
                raise UnsafeHeader("A header name is not a valid HTTP token; the webhook is not sent.")
            if len(_TOKENS) < _MAX_TOKENS:
                _TOKENS.add(name)
        if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
            # Never the value: it may be a customer's secret.
            raise UnsafeHeader(
                "The %s header holds CR, LF or another character that is not visible ASCII; "
                "the webhook is not sent." % name
            )


def _discard(response: urllib3.HTTPResponse) -> None:
    response.close()
    response.release_conn()


def _sender_from_settings() -> Sender:
    values = settings.get()
    return Sender(
        connect_timeout=values.CONNECT_TIMEOUT,
        read_timeout=values.READ_TIMEOUT,
        max_response_bytes=values.MAX_RESPONSE_BYTES,
        policy=AddressPolicy(allow_private=values.ALLOW_PRIVATE_DESTINATIONS, allowed_networks=values.ALLOWED_NETWORKS),
        https_only=values.HTTPS_ONLY,
        ca_bundle=values.CA_BUNDLE,
        resolver=values.RESOLVER or resolve,
        dns_cache_seconds=values.DNS_CACHE_SECONDS,
    )


def _close_idle_connections(sender: Sender) -> None:
    # They would otherwise stay open until collected; one in use closes when released.
    sender.pools.clear()


_sender = settings.PerProcess(_sender_from_settings, discard=_close_idle_connections)


def get_sender() -> Sender:
    """The sender of this process, built from the settings on first use and shared by all threads."""
    return _sender.get()
