"""The SSRF guard: refused destinations never reach a socket, allowed ones do, and a DNS answer
that changes between the check and the connection cannot get through.

Every connection of these tests stays on loopback: a guard refuses any other before a packet
leaves (and records it), and names are answered by resolver stubs.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from dramatiq.brokers.stub import StubBroker
from hypothesis import given
from hypothesis import settings as settings_of_hypothesis
from hypothesis import strategies as st

from hybiscus_webhooks import DestinationRefused, UnsafeHeader, Webhook, settings
from hybiscus_webhooks.delivery import COMPLETED, send
from hybiscus_webhooks.destinations import AddressPolicy, parse_networks
from hybiscus_webhooks.sender import Sender, _check, _Lookups, get_sender

from .asgi import call
from .conftest import Enqueued
from .hostile import Guard, Listener, answer, loopback_only

BODY = b'{"event":"report.completed","task_id":"t","url":"https://r.example/t"}'
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer tok_ssrf"}
STRICT = AddressPolicy()
LOOPBACK_ALLOWED = AddressPolicy(allowed_networks=parse_networks(["127.0.0.0/8", "::1/128"]))


class StubResolver:
    """Answers names from a table; a list of lists answers one list per call, the last one repeated."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append((host, port))
        answer = self.answers[host]
        if answer and isinstance(answer[0], list):
            return list(answer[min(len(self.calls_for(host)), len(answer)) - 1])
        return list(answer)

    def calls_for(self, host: str) -> list[tuple[str, int]]:
        return [call for call in self.calls if call[0] == host]


def make_sender(policy: AddressPolicy = STRICT, resolver: Any = None, **options: Any) -> Sender:
    resolver = resolver or StubResolver({})
    return Sender(connect_timeout=2.0, read_timeout=2.0, max_response_bytes=64, policy=policy, resolver=resolver,
                  **options)


@pytest.fixture
def guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[Guard]:
    with loopback_only(monkeypatch) as guarded:
        yield guarded


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    with Listener(answer(204)) as started:
        yield started


# Hosts that spell a loopback address, and that the listener on 127.0.0.1 and [::1] answers when allowed.
LOOPBACK_SPELLINGS = [
    "127.0.0.1", "127.1", "127.0.1", "2130706433", "0x7f000001", "0x7f.1", "0x7f.0.0.1", "0X7F.0x0.0.0x1",
    "0177.0.0.1", "0177.1", "017700000001", "127.0.0.1.", "\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11",
    "127\u30020\u30020\u30021", "[::1]", "[0:0:0:0:0:0:0:1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]",
    "[0:0:0:0:0:ffff:127.0.0.1]",
]
# Forbidden literals that are not loopback: were one connected to, the guard would refuse and record it.
OTHER_LITERALS = [
    "127.0.0.2", "0.0.0.0", "0", "[::]", "[::127.0.0.1]", "10.0.0.1", "10.255.255.254", "172.16.0.1",
    "172.31.255.254", "192.168.0.1", "192.168.1.1", "169.254.169.254", "169.254.43518", "0xa9fea9fe",
    "0251.0376.0251.0376", "100.64.0.1", "100.127.255.254", "192.0.0.170", "198.18.0.1", "224.0.0.1",
    "239.255.255.250", "255.255.255.255", "240.0.0.1", "[fe80::1]", "[fe80::1%25lo]", "[fc00::1]",
    "[fd00:ec2::254]", "[ff02::1]", "[fec0::1]", "[::ffff:169.254.169.254]", "[::ffff:10.0.0.1]",
    "[64:ff9b::127.0.0.1]", "[64:ff9b::a9fe:a9fe]", "[2002:7f00:1::1]", "[2002:a9fe:a9fe::1]", "[2001:db8::1]",
    "[2001::1]",
]
# Names, and what a resolver stub answers for them.
RESOLVED = {
    "internal.example": ["10.0.0.5"],
    "metadata.google.internal": ["169.254.169.254"],
    "localhost.example": ["127.0.0.1"],
    "v6loopback.example": ["::1"],
    "mapped.example": ["::ffff:127.0.0.1"],
    "nat64.example": ["64:ff9b::7f00:1"],
    "sixtofour.example": ["2002:7f00:1::"],
    "cgnat.example": ["100.64.1.1"],
    "ula.example": ["fd00::1"],
    "linklocal6.example": ["fe80::1%lo"],
    "unspecified.example": ["0.0.0.0"],
    "broadcast.example": ["255.255.255.255"],
    "multicast.example": ["224.0.0.1"],
    "documentation.example": ["192.0.2.1"],
    "benchmark.example": ["198.18.0.1"],
    "private172.example": ["172.20.0.1"],
    "mixed.example": ["1.1.1.1", "127.0.0.1"],
    "mixed6.example": ["2606:4700::1111", "::1"],
    "last-of-many.example": ["1.1.1.1", "8.8.8.8", "9.9.9.9", "192.168.1.20"],
    "not-an-address.example": ["localhost"],
    "xn--bcher-kva.example": ["127.0.0.1"],
    "localhost": ["127.0.0.1"],
}
NAMES = [*RESOLVED, "b\u00fccher.example", "\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54"]
DESTINATIONS = LOOPBACK_SPELLINGS + OTHER_LITERALS + NAMES


def test_there_are_at_least_sixty_destinations() -> None:
    assert len(set(DESTINATIONS)) == len(DESTINATIONS) >= 60


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("host", DESTINATIONS)
def test_a_refused_destination_never_reaches_a_socket(guard: Guard, listener: Listener, host: str, scheme: str) -> None:
    before = listener.accepts
    resolver = StubResolver(RESOLVED)
    with pytest.raises(DestinationRefused, match=r"Host .* (is|resolves to)|not an IP address"):
        make_sender(resolver=resolver).post(listener.url(host, scheme), BODY, HEADERS)
    assert guard.connects == []
    assert guard.names == []  # Nothing but the stub was asked for a name.
    assert listener.accepts == before
    assert len(resolver.calls) == (0 if host in LOOPBACK_SPELLINGS + OTHER_LITERALS else 1)


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS + ["localhost.example", "v6loopback.example", "mapped.example"])
@pytest.mark.parametrize(
    "policy", [AddressPolicy(allow_private=True), LOOPBACK_ALLOWED], ids=["allow-private", "allow-list"]
)
def test_an_allowed_destination_reaches_the_listener(
    guard: Guard, listener: Listener, host: str, policy: AddressPolicy
) -> None:
    before = listener.accepts
    outcome = make_sender(policy, StubResolver(RESOLVED)).post(listener.url(host), BODY, HEADERS)
    assert outcome.ok, outcome
    assert listener.accepts == before + 1
    assert guard.blocked == []


def test_the_dns_answer_is_checked_once_and_the_checked_address_is_the_one_connected_to(guard: Guard) -> None:
    # 127.0.0.2 stands for a public address (allowed by the list); 127.0.0.1 for the private one
    # that a rebinding DNS server answers on the next lookup.
    with Listener(hosts=("127.0.0.1",)) as private, Listener(hosts=("127.0.0.2",), port=private.port) as public:
        resolver = StubResolver({"rebind.example": [["127.0.0.2"], ["127.0.0.1"]]})
        policy = AddressPolicy(allowed_networks=parse_networks(["127.0.0.2/32"]))
        sender = make_sender(policy, resolver)
        outcome = sender.post("http://rebind.example:%d/hook" % private.port, BODY, HEADERS)
        assert outcome.ok and public.accepts == 1 and private.accepts == 0
        assert resolver.calls == [("rebind.example", private.port)]
        assert b"\r\nHost: rebind.example:%d\r\n" % private.port in public.connections[0].request
        # The next attempt gets the private answer, and is refused before it connects.
        with pytest.raises(DestinationRefused, match=r"rebind\.example resolves to 127\.0\.0\.1, a loopback address"):
            sender.post("http://rebind.example:%d/hook" % private.port, BODY, HEADERS)
        assert private.accepts == 0 and public.accepts == 1
    assert guard.names == []  # urllib3 never looked the name up again.


class Clock:
    """A monotonic clock that stands still until moved."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_vetted_addresses_are_used_for_dns_cache_seconds_and_a_rebinding_answer_is_vetted_before_use(
    guard: Guard,
) -> None:
    with Listener(hosts=("127.0.0.1",)) as private, Listener(hosts=("127.0.0.2",), port=private.port) as public:
        resolver = StubResolver({"rebind.example": [["127.0.0.2"], ["127.0.0.1"]]})
        policy = AddressPolicy(allowed_networks=parse_networks(["127.0.0.2/32"]))
        clock = Clock()
        sender = make_sender(policy, resolver, dns_cache_seconds=30, clock=clock)
        url = "http://rebind.example:%d/hook" % private.port
        for _ in range(4):
            assert sender.post(url, BODY, HEADERS).ok
            clock.now += 9.9
        # Four attempts within 30 s of the lookup: one lookup, four requests to the address it vetted.
        assert resolver.calls == [("rebind.example", private.port)]
        assert len(public.requested_at) == 4 and private.accepts == 0
        # 30 s after the lookup the name is resolved again: the rebinding answer is refused, never used.
        with pytest.raises(DestinationRefused, match=r"rebind\.example resolves to 127\.0\.0\.1, a loopback"):
            sender.post(url, BODY, HEADERS)
        assert len(resolver.calls) == 2 and private.accepts == 0
        # Nothing refused is kept: the next attempt asks again.
        with pytest.raises(DestinationRefused):
            sender.post(url, BODY, HEADERS)
        assert len(resolver.calls) == 3
    assert guard.names == [] and guard.blocked == []


@pytest.mark.parametrize("failure", ["HTTP 503", "connection refused"])
def test_after_a_failed_attempt_the_next_one_resolves_the_name_again(guard: Guard, failure: str) -> None:
    resolver = StubResolver({"moved.example": ["127.0.0.1"]})
    sender = make_sender(LOOPBACK_ALLOWED, resolver, dns_cache_seconds=30, clock=Clock())
    if failure == "HTTP 503":
        with Listener(answer(503)) as listener:
            outcomes = [sender.post(listener.url("moved.example"), BODY, HEADERS) for _ in range(3)]
    else:
        with Listener() as closed:
            url = closed.url("moved.example")
        outcomes = [sender.post(url, BODY, HEADERS) for _ in range(3)]  # Nothing listens there any more.
    assert [outcome.describe() for outcome in outcomes] == (
        ["HTTP 503"] * 3 if failure == "HTTP 503" else ["NewConnectionError"] * 3)
    assert len(resolver.calls) == 3


def test_the_sender_keeps_the_addresses_of_at_most_max_cached_hosts(
    guard: Guard, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hybiscus_webhooks.sender.MAX_CACHED_HOSTS", 2)
    resolver = StubResolver({name: ["127.0.0.1"] for name in ("a.example", "b.example", "c.example")})
    sender = make_sender(LOOPBACK_ALLOWED, resolver, dns_cache_seconds=30, clock=Clock())
    for name in ("a.example", "b.example", "c.example", "c.example", "b.example", "a.example"):
        assert sender.post(listener.url(name), BODY, HEADERS).ok
    # c pushed out a (the oldest lookup); a, back, pushed out b, which is then looked up again last.
    assert [host for host, _ in resolver.calls] == ["a.example", "b.example", "c.example", "a.example"]
    assert sender.post(listener.url("b.example"), BODY, HEADERS).ok
    assert [host for host, _ in resolver.calls][-1] == "b.example"


def test_a_host_looked_up_again_when_its_addresses_expire_counts_as_the_newest_lookup(
    guard: Guard, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hybiscus_webhooks.sender.MAX_CACHED_HOSTS", 2)
    resolver = StubResolver({name: ["127.0.0.1"] for name in ("a.example", "b.example", "c.example")})
    clock = Clock()
    sender = make_sender(LOOPBACK_ALLOWED, resolver, dns_cache_seconds=30, clock=clock)
    assert sender.post(listener.url("a.example"), BODY, HEADERS).ok
    clock.now += 20
    assert sender.post(listener.url("b.example"), BODY, HEADERS).ok
    clock.now += 20  # a has expired, b has not.
    for name in ("a.example", "c.example", "a.example", "b.example"):
        assert sender.post(listener.url(name), BODY, HEADERS).ok
    # a, looked up again, is newer than b: c pushes out b, and a is still kept.
    assert [host for host, _ in resolver.calls] == ["a.example", "b.example", "a.example", "c.example", "b.example"]


def test_dns_cache_seconds_reaches_the_sender_and_0_resolves_before_every_attempt(
    guard: Guard, listener: Listener
) -> None:
    resolver = StubResolver({"hooks.example": ["127.0.0.1"]})
    settings.configure(ALLOWED_NETWORKS=["127.0.0.0/8"], RESOLVER=resolver)
    assert get_sender().dns_cache_seconds == 30.0
    for _ in range(3):
        assert get_sender().post(listener.url("hooks.example"), BODY, HEADERS).ok
    assert len(resolver.calls) == 1
    settings.configure(ALLOWED_NETWORKS=["127.0.0.0/8"], RESOLVER=resolver, DNS_CACHE_SECONDS=0)
    for _ in range(3):
        assert get_sender().post(listener.url("hooks.example"), BODY, HEADERS).ok
    assert len(resolver.calls) == 4


def test_a_public_first_answer_is_connected_to_as_vetted_and_the_private_second_is_refused(guard: Guard) -> None:
    with Listener() as private:
        resolver = StubResolver({"rebind.example": [["1.1.1.1"], ["127.0.0.1"]]})
        sender = make_sender(STRICT, resolver)
        url = "http://rebind.example:%d/hook" % private.port
        outcome = sender.post(url, BODY, HEADERS)
        # The guard refused the connection to the vetted public address before any packet left.
        assert guard.blocked == [("1.1.1.1", private.port)]
        assert outcome.error == "NewConnectionError" and not outcome.ok
        with pytest.raises(DestinationRefused):
            sender.post(url, BODY, HEADERS)
        assert private.accepts == 0
        assert guard.blocked == [("1.1.1.1", private.port)] and guard.names == []


def test_the_next_address_is_tried_when_one_refuses(guard: Guard, listener: Listener) -> None:
    resolver = StubResolver({"two.example": ["127.0.0.3", "127.0.0.1"]})
    outcome = make_sender(LOOPBACK_ALLOWED, resolver).post(listener.url("two.example"), BODY, HEADERS)
    assert outcome.ok
    assert [address[0] for address in guard.connects] == ["127.0.0.3", "127.0.0.1"]


def test_a_name_that_does_not_resolve_is_a_failed_attempt(guard: Guard) -> None:
    def nowhere(host: str, port: int) -> list[str]:
        raise OSError("no such name")

    outcome = make_sender(resolver=nowhere).post("https://nowhere.example/h", BODY, HEADERS)
    assert outcome.error == "NameResolutionError" and not outcome.ok
    outcome = make_sender(resolver=lambda host, port: []).post("https://empty.example/h", BODY, HEADERS)
    assert outcome.error == "NameResolutionError"
    assert guard.connects == []


class SilentResolver:
    """A resolver that answers only once released, as getaddrinfo does with a DNS server that keeps quiet."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.release = threading.Event()

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        self.release.wait(30)
        return ["127.0.0.1"]


def test_a_resolver_that_does_not_answer_is_a_failed_attempt_within_the_connect_timeout(guard: Guard) -> None:
    # getaddrinfo cannot be interrupted: a silent DNS server holds it for 30 s or more.
    silent = SilentResolver()
    sender = Sender(connect_timeout=0.2, read_timeout=5, max_response_bytes=64, policy=LOOPBACK_ALLOWED,
                    resolver=silent)
    try:
        started = time.monotonic()
        outcome = sender.post("https://silent.example/h", BODY, HEADERS)
        took = time.monotonic() - started
        assert outcome.error == "NameResolutionTimeout" and not outcome.ok
        assert outcome.elapsed >= 0.2 and took < 5  # Bounded by the connect timeout, not the resolver.
        assert silent.asked == ["silent.example"] and guard.connects == []
    finally:
        silent.release.set()


def test_lookups_that_never_return_use_up_no_more_than_their_threads(guard: Guard) -> None:
    silent = SilentResolver()
    lookups = _Lookups(silent, threads=2)
    try:
        for index in range(5):
            with pytest.raises(TimeoutError, match="no answer for h%d.example in 0.05 s" % index):
                lookups.resolve("h%d.example" % index, 443, 0.05)
        # Two threads are stuck in the resolver; the lookups queued behind them were dropped unrun.
        assert silent.asked == ["h0.example", "h1.example"]
    finally:
        silent.release.set()


def test_the_default_resolver_resolves_once(guard: Guard, listener: Listener) -> None:
    sender = Sender(connect_timeout=2, read_timeout=2, max_response_bytes=0, policy=LOOPBACK_ALLOWED)
    assert sender.post(listener.url("localhost"), BODY, HEADERS).ok
    assert guard.names == ["localhost"]
    assert guard.connects[0][0] in ("127.0.0.1", "::1")


def test_https_only_refuses_http_before_resolving(guard: Guard, listener: Listener) -> None:
    resolver = StubResolver({"localhost": ["127.0.0.1"]})
    sender = make_sender(AddressPolicy(allow_private=True), resolver, https_only=True)
    with pytest.raises(DestinationRefused, match="HTTPS_ONLY"):
        sender.post(listener.url("localhost"), BODY, HEADERS)
    assert resolver.calls == [] and guard.connects == []


@pytest.mark.parametrize(
    "url", ["ftp://hooks.example/h", "https://hooks.example/a b", "https://hooks.example/\r\nX: y", "https://a..b/",
            "https://[::1/", "https://hooks.example:99999/", "https:///h", "https://256.0.0.1/"],
)
def test_a_url_the_schemas_would_have_rejected_is_refused(guard: Guard, url: str) -> None:
    with pytest.raises(DestinationRefused, match="not an http or https URL with a valid host"):
        make_sender(AddressPolicy(allow_private=True)).post(url, BODY, HEADERS)
    assert guard.connects == []


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": "Bearer s3cr3t\r\nX-Evil: 1"}, {"Authorization": "Bearer s3cr3t\nX"},
     {"Authorization": "s3cr3t\x00"}, {"Authorization": "s3cr3t\u00f6"}, {"X-Bad Name": "s3cr3t"},
     {"X\r\nEvil": "s3cr3t"}],
)
def test_a_header_with_cr_lf_or_controls_is_never_sent(
    guard: Guard, listener: Listener, headers: dict[str, str]
) -> None:
    before = listener.accepts
    with pytest.raises(UnsafeHeader) as refused:
        make_sender(AddressPolicy(allow_private=True)).post(listener.url(), BODY, headers)
    assert "s3cr3t" not in str(refused.value)
    assert guard.connects == [] and listener.accepts == before


# Mostly good names and values, with one bad character here and there: in the middle of a name
# (where joining names would hide a ":"), in any value of several.
TOKEN = st.text(st.sampled_from("aZ0-_!~"), min_size=1, max_size=3)
BAD = st.sampled_from(":; \t\r\n\x00\x7f\u00f6(\"")
HEADER_NAME = TOKEN | st.builds(lambda left, bad, right: left + bad + right, TOKEN, BAD, TOKEN | st.just(""))
VISIBLE = st.text(st.sampled_from("aZ0 :;~\"("), max_size=4)
HEADER_VALUE = VISIBLE | st.builds(lambda left, bad, right: left + bad + right, VISIBLE, BAD, VISIBLE) | st.integers()


@settings_of_hypothesis(max_examples=500, deadline=None)
@given(headers=st.dictionaries(HEADER_NAME, HEADER_VALUE, max_size=4))
def test_headers_are_refused_exactly_when_a_name_is_not_a_token_or_a_value_not_visible_ascii(
    headers: dict[str, Any]
) -> None:
    # The check looks at all the values at once: it must refuse what a check of each one refuses.
    token = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
    bad = any(not token.fullmatch(name) or not isinstance(value, str) or not re.fullmatch(r"[ -~]*", value)
              for name, value in headers.items())
    if bad:
        with pytest.raises(UnsafeHeader):
            _check(headers)
    else:
        _check(headers)


def test_non_ascii_paths_are_percent_encoded_and_the_host_header_keeps_the_name(
    guard: Guard, listener: Listener
) -> None:
    resolver = StubResolver({"xn--bcher-kva.example": ["127.0.0.1"]})
    outcome = make_sender(LOOPBACK_ALLOWED, resolver).post(
        "http://B\u00fccher.example:%d/h\u00e9?q=\u00e9#frag" % listener.port, BODY, HEADERS
    )
    assert outcome.ok
    request = listener.connections[-1].request
    assert request.startswith(b"POST /h%C3%A9?q=%C3%A9 HTTP/1.1\r\n")
    assert b"\r\nHost: xn--bcher-kva.example:%d\r\n" % listener.port in request


# ---- In the delivery actor: a WARNING, no retries ----------------------------------------------

ACTOR_DESTINATIONS = ["0x7f.1", "[::ffff:127.0.0.1]", "169.254.169.254", "internal.example", "mixed.example",
                      "metadata.google.internal", "[64:ff9b::a9fe:a9fe]"]


@pytest.mark.parametrize("host", ACTOR_DESTINATIONS)
def test_a_refused_delivery_is_a_warning_and_a_permanent_failure(
    guard: Guard, listener: Listener, stub_broker: StubBroker, start_worker: Any, enqueued: Enqueued,
    caplog: pytest.LogCaptureFixture, host: str,
) -> None:
    settings.configure(REPORT_URL="https://r.example/{task_id}", RESOLVER=StubResolver(RESOLVED))
    before = listener.accepts
    send(COMPLETED, "task-ssrf", Webhook(listener.url(host) + "?token=querysecret", "tok_refused"), broker=stub_broker)
    start_worker(stub_broker)
    stub_broker.join("hybiscus_webhooks", fail_fast=False)
    assert len(stub_broker.dead_letters) == 1
    assert enqueued.etas == []  # Never retried.
    [warning] = [record for record in caplog.records
                 if record.levelno == logging.WARNING and record.name == "hybiscus_webhooks.delivery"]
    text = warning.getMessage()
    assert "task-ssrf" in text and "Refused report.completed" in text and "no retries" in text
    assert ":%d" % listener.port in text
    assert "tok_refused" not in caplog.text and "querysecret" not in caplog.text
    assert listener.accepts == before and guard.connects == []


def test_allowed_networks_and_allow_private_reach_the_actor(
    listener: Listener, stub_broker: StubBroker, start_worker: Any, guard: Guard
) -> None:
    start_worker(stub_broker)
    for names in ({"ALLOWED_NETWORKS": ["127.0.0.0/8"]}, {"ALLOW_PRIVATE_DESTINATIONS": True}):
        settings.configure(REPORT_URL="https://r.example/{task_id}", **names)
        before = listener.accepts
        send(COMPLETED, "task-ok", Webhook(listener.url("0x7f.1")), broker=stub_broker)
        stub_broker.join("hybiscus_webhooks", fail_fast=True)
        assert listener.accepts == before + 1
    assert stub_broker.dead_letters == [] and guard.blocked == []


def test_an_unsafe_header_in_a_message_is_refused_by_the_actor(
    listener: Listener, stub_broker: StubBroker, start_worker: Any, enqueued: Enqueued,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The schemas reject such an auth_header; a message crafted past them must not reach the wire either.
    before = listener.accepts
    send(COMPLETED, "task-crlf", Webhook(listener.url(), "tok_secret\r\nX-Evil: 1"), broker=stub_broker)
    start_worker(stub_broker)
    stub_broker.join("hybiscus_webhooks", fail_fast=False)
    assert len(stub_broker.dead_letters) == 1 and enqueued.etas == []
    assert "Authorization header holds CR, LF" in caplog.text
    assert "tok_secret" not in caplog.text
    assert listener.accepts == before


# ---- The middleware's early check ---------------------------------------------------------------


def submit(url: str) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from hybiscus_webhooks import WebhooksMiddleware

    async def build_report(request: Request) -> JSONResponse:
        return JSONResponse({"task_id": "t", "status": "QUEUED"})

    app = Starlette(routes=[Route("/api/v1/build-report", build_report, methods=["POST"])])
    app.add_middleware(WebhooksMiddleware)
    body = b'{"config": {"webhooks": [{"url": "%s"}]}}' % url.encode()
    return call(app, body=body)


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS + OTHER_LITERALS)
def test_the_middleware_rejects_a_forbidden_literal_in_any_spelling(guard: Guard, host: str) -> None:
    settings.configure()
    answer = submit("https://%s:8443/hook" % host)
    assert answer.status == 422, answer.body
    assert answer.json()["detail"] == [{
        "loc": ["body", "config", "webhooks", 0, "url"],
        "msg": "Must not point to a loopback, private, link-local or other non-public address.",
        "type": "url_forbidden_address",
    }]
    assert guard.connects == [] and guard.names == []


@pytest.mark.parametrize("host", ["hooks.example", "localhost", "internal.corp", "1.1.1.1", "[2606:4700::1111]"])
def test_the_middleware_resolves_no_names(guard: Guard, host: str) -> None:
    settings.configure()
    assert submit("https://%s/hook" % host).status == 200
    assert guard.names == [] and guard.connects == []


def test_the_middleware_honours_the_settings() -> None:
    settings.configure(ALLOWED_NETWORKS=["10.0.0.0/8"])
    assert submit("https://10.1.2.3/hook").status == 200
    assert submit("https://0x7f.1/hook").status == 422
    settings.configure(ALLOW_PRIVATE_DESTINATIONS=True)
    assert submit("https://0x7f.1/hook").status == 200
    settings.configure(HTTPS_ONLY=True)
    answer = submit("http://hooks.example/hook")
    assert answer.status == 422
    assert answer.json()["detail"][0]["type"] == "url_https_required"
    assert submit("https://hooks.example/hook").status == 200


def test_the_guard_itself_refuses_anything_but_loopback(guard: Guard) -> None:
    import socket

    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("192.0.2.1", 80))
    assert guard.blocked == [("192.0.2.1", 80)]
