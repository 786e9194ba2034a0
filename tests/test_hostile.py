"""Hostile receivers, on real sockets on loopback: each ends as a failed attempt within the
timeouts, with bounded memory, and is retried on the schedule."""

from __future__ import annotations

import datetime
import itertools
import resource
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from dramatiq.brokers.stub import StubBroker

from hybiscus_webhooks import Webhook, settings
from hybiscus_webhooks.delivery import COMPLETED, send
from hybiscus_webhooks.destinations import AddressPolicy, parse_networks
from hybiscus_webhooks.sender import Sender
from hybiscus_webhooks.testing import DramatiqClock

from .conftest import REPORT_URL, Enqueued
from .hostile import (
    GIGABYTE,
    Handler,
    Listener,
    answer,
    close_before_answer,
    close_mid_response,
    drip,
    drip_headers,
    drip_then_silence,
    endless_continue,
    endless_header,
    garbage,
    hang,
    huge,
    redirect,
    tls_context,
)

BODY = b'{"event":"report.completed","task_id":"t","url":"https://r.example/t"}'
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer tok_hostile"}
CONNECT, READ = 0.5, 0.5
#: connect + read: no attempt may take longer, whatever the receiver does (plus scheduling slack).
LIMIT = CONNECT + READ
SLACK = 1.0
LOOPBACK = AddressPolicy(allowed_networks=parse_networks(["127.0.0.0/8", "::1/128"]))


def make_sender(**options: Any) -> Sender:
    options = {"connect_timeout": CONNECT, "read_timeout": READ, "max_response_bytes": 64, "policy": LOOPBACK,
               **options}
    return Sender(**options)


def post(listener: Listener, url: str | None = None, **options: Any) -> Any:
    return make_sender(**options).post(url or listener.url(), BODY, HEADERS)


# (handler, the error that ends the attempt, the status seen before it, if any)
HOSTILE: dict[str, tuple[Handler, set[str], int | None]] = {
    "hangs-after-accepting": (hang, {"ReadTimeoutError"}, None),
    "drips-the-body": (drip(200, 0.05), {"ReadTimeoutError"}, 200),
    "drips-the-headers": (drip_headers(0.05), {"ReadTimeoutError"}, None),
    "endless-100-continue": (endless_continue(0.05), {"ReadTimeoutError"}, None),
    "endless-header-line": (endless_header, {"ProtocolError"}, None),
    "garbage-instead-of-http": (garbage, {"ProtocolError"}, None),
    "closes-mid-response": (close_mid_response, {"ProtocolError", "IncompleteRead"}, 200),
    "closes-before-answering": (close_before_answer, {"ProtocolError"}, None),
}


@pytest.mark.parametrize(("handler", "errors", "status"), HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_receiver_is_a_failed_attempt_within_the_timeouts(
    handler: Handler, errors: set[str], status: int | None
) -> None:
    with Listener(handler) as listener:
        outcome = post(listener)
    assert not outcome.ok
    assert outcome.error in errors, outcome
    assert outcome.status == status
    assert outcome.elapsed < LIMIT + SLACK
    assert listener.accepts == 1


@pytest.mark.parametrize("handler", [drip(200, 0.05), drip_headers(0.05), endless_continue(0.05)],
                         ids=["body", "headers", "100-continue"])
def test_a_drip_faster_than_the_read_timeout_is_cut_at_the_deadline(handler: Handler) -> None:
    # Every byte comes well within the read timeout, so only the attempt's deadline ends it.
    with Listener(handler) as listener:
        outcome = post(listener, connect_timeout=0.2, read_timeout=1.0)
    assert 1.2 - 0.05 <= outcome.elapsed < 1.2 + SLACK, outcome
    assert outcome.error == "ReadTimeoutError"
    assert listener.connections[0].sent > 10  # It kept dripping all along.


def test_a_read_that_would_wait_past_the_deadline_is_cut_at_it() -> None:
    # Five bytes within the read timeout, the last at 2.5 s, then silence: the read after it may wait
    # only the 0.7 s left of the attempt's 3.2 s, not the 3 s of a read timeout (it would end at 5.5 s).
    with Listener(drip_then_silence(0.5, 5)) as listener:
        outcome = post(listener, connect_timeout=0.2, read_timeout=3.0)
    assert 3.2 - 0.05 <= outcome.elapsed < 3.2 + SLACK, outcome
    assert outcome.error == "ReadTimeoutError"
    assert listener.connections[0].sent > 5


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_a_failed_attempt_and_is_not_followed(status: int) -> None:
    with Listener() as target, Listener(redirect(status, target.url(path="/internal"))) as listener:
        outcome = post(listener)
    assert outcome.status == status and not outcome.ok and outcome.error is None
    assert target.accepts == 0


@pytest.mark.parametrize(("status", "chunked"), [(200, False), (503, False), (200, True), (503, True)])
def test_a_gigabyte_answer_is_never_read_beyond_the_cap(status: int, chunked: bool) -> None:
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with Listener(huge(status, chunked=chunked)) as listener:
        tracemalloc.start()
        try:
            outcome = post(listener, max_response_bytes=4096)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    # A 2xx whose answer goes on is still a 2xx: the head was read and the rest never will be.
    assert outcome.ok is (status == 200)
    assert outcome.status == status and outcome.error is None
    assert outcome.response_head == bytes(4096)
    assert outcome.elapsed < LIMIT
    assert peak < 1024 * 1024, peak  # Python allocations of every thread during the attempt.
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - max_rss) * 1024 < 64 * 1024 * 1024
    assert listener.connections[0].sent < GIGABYTE // 16  # The connection was closed, not drained.


# ---- TLS -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def resolver(host: str, port: int) -> list[str]:
    # Test names, all on loopback.
    return ["127.0.0.1"]


def test_a_good_certificate_for_the_name_while_connecting_to_the_vetted_address(
    ca: trustme.CA, ca_file: Path
) -> None:
    with Listener(answer(204), tls=tls_context(ca.issue_cert("hooks.test"))) as listener:
        outcome = post(listener, listener.url("hooks.test", "https"), ca_bundle=str(ca_file), resolver=resolver)
    assert outcome.ok, outcome
    [connection] = listener.connections
    assert connection.server_name == "hooks.test"  # SNI names the host, not the address.
    assert b"\r\nHost: hooks.test:%d\r\n" % listener.port in connection.request


def test_localhost_with_the_system_resolver(ca: trustme.CA, ca_file: Path) -> None:
    with Listener(answer(204), tls=tls_context(ca.issue_cert("localhost"))) as listener:
        outcome = post(listener, listener.url("localhost", "https"), ca_bundle=str(ca_file))
    assert outcome.ok, outcome


BAD_CERTIFICATES = {
    "untrusted-ca": lambda ca: trustme.CA().issue_cert("hooks.test"),
    "other-name": lambda ca: ca.issue_cert("other.test"),
    "only-the-ip": lambda ca: ca.issue_cert("127.0.0.1"),
    "expired": lambda ca: ca.issue_cert(
        "hooks.test", not_before=datetime.datetime(2020, 1, 1), not_after=datetime.datetime(2021, 1, 1)
    ),
}


@pytest.mark.parametrize("certificate", BAD_CERTIFICATES.values(), ids=BAD_CERTIFICATES.keys())
def test_a_bad_certificate_is_a_failed_attempt(ca: trustme.CA, ca_file: Path, certificate: Any) -> None:
    with Listener(answer(204), tls=tls_context(certificate(ca))) as listener:
        outcome = post(listener, listener.url("hooks.test", "https"), ca_bundle=str(ca_file), resolver=resolver)
    assert outcome.error == "SSLError" and outcome.status is None and not outcome.ok
    assert listener.requested_at == []  # Nothing was sent over it.
    assert outcome.elapsed < LIMIT + SLACK


def test_the_system_bundle_does_not_trust_a_private_ca(ca: trustme.CA) -> None:
    with Listener(answer(204), tls=tls_context(ca.issue_cert("hooks.test"))) as listener:
        outcome = post(listener, listener.url("hooks.test", "https"), resolver=resolver)
    assert outcome.error == "SSLError"


def test_a_receiver_that_never_completes_the_handshake(ca_file: Path) -> None:
    with Listener(hang) as listener:
        outcome = post(listener, listener.url("hooks.test", "https"), ca_bundle=str(ca_file), resolver=resolver)
    assert outcome.error is not None and not outcome.ok
    assert outcome.elapsed < LIMIT + SLACK


# ---- Retried on the schedule, in the delivery actor ------------------------------------------------


RETRIED = {
    "hangs": hang,
    "drips": drip(200, 0.05),
    "garbage": garbage,
    "closes-mid-response": close_mid_response,
    "redirects": redirect(307, "http://127.0.0.1:1/"),
    "gigabyte-503": huge(503),
    "bad-certificate": "tls",
}


@pytest.fixture
def deliver_to(stub_broker: StubBroker, start_worker: Any, enqueued: Enqueued, clock: DramatiqClock) -> Iterator[Any]:
    def run(handler: Handler | str, attempts: int) -> list[float]:
        """When each of ``attempts`` attempts reached the receiver, by the moved clock."""
        tls = tls_context(trustme.CA().issue_cert("localhost")) if handler == "tls" else None
        settings.configure(REPORT_URL=REPORT_URL, ALLOWED_NETWORKS=["127.0.0.0/8"], CONNECT_TIMEOUT=0.3,
                           READ_TIMEOUT=0.3)
        with Listener(answer(204) if isinstance(handler, str) else handler, tls=tls, clock=clock.millis) as listener:
            # A failed handshake sends no request; a connection may be reused after a complete answer.
            wait, arrivals = (listener.wait_for, listener.accepted_at) if tls else (
                listener.wait_for_requests, listener.requested_at)
            url = listener.url("localhost", "https" if tls else "http")
            send(COMPLETED, "task-hostile", Webhook(url, "tok_hostile"), broker=stub_broker)
            start_worker(stub_broker)
            wait(1)
            for retry in range(1, attempts):
                clock.now = enqueued.wait_for_eta(retry) / 1000
                wait(retry + 1)
            enqueued.wait_for_eta(attempts)  # The last one failed too, and was scheduled again.
            return list(arrivals)

    yield run


@pytest.mark.parametrize("handler", RETRIED.values(), ids=RETRIED.keys())
def test_a_hostile_receiver_is_retried_on_the_schedule(
    deliver_to: Any, stub_broker: StubBroker, handler: Handler | str
) -> None:
    times = deliver_to(handler, attempts=3)
    assert [later - earlier for earlier, later in itertools.pairwise(times)] == [30_000, 60_000]
    assert stub_broker.dead_letters == []
