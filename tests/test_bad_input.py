"""Malformed submissions: a table of them, and a fuzz of the middleware over thousands of bodies.

Whatever arrives: never a 5xx, never the app called with an invalid webhook, never a delivery
enqueued for one. The test app does what a report service does: parses the body with json.loads
and hands it to ``report_completed`` on a StubBroker, whose queue is then inspected.
"""

from __future__ import annotations

import json
import re
import socket
import unicodedata
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_network
from typing import Any
from urllib.parse import urlsplit

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hybiscus_webhooks import WebhooksMiddleware, install, report_completed, settings
from hybiscus_webhooks.delivery import _ENDPOINT_OPTION

from .asgi import Answer, call

LOC = ["body", "config", "webhooks"]
QUEUE = "hybiscus_webhooks"
MAX_BODY = 64 * 1024


@dataclass
class App:
    """A fresh report service: its route, what it saw, and the broker it enqueued on."""

    asgi: Any
    broker: StubBroker
    seen: list[dict[str, Any]]

    def submit(self, body: bytes, **options: Any) -> Answer:
        return call(self.asgi, body=body, **options)

    def enqueued(self) -> list[dict[str, Any]]:
        messages = [dramatiq.Message.decode(data) for data in list(self.broker.queues[QUEUE].queue)]
        return [message.options[_ENDPOINT_OPTION] for message in messages]


def make_app(broker: StubBroker) -> App:
    install(broker)
    seen: list[dict[str, Any]] = []

    async def build_report(request: Request) -> Response:
        body = await request.body()
        try:
            json.loads(body)  # What Starlette's request.json() does.
        except (ValueError, RecursionError):
            return JSONResponse({"detail": "The body is not JSON."}, status_code=400)
        seen.append({"body": body, "webhooks": request.state.webhooks})
        report_completed("task-1", body, broker=broker)
        return JSONResponse({"task_id": "task-1", "status": "QUEUED"})

    asgi = Starlette(routes=[Route("/api/v1/build-report", build_report, methods=["POST"])])
    asgi.add_middleware(WebhooksMiddleware, max_body_bytes=MAX_BODY)
    return App(asgi, broker, seen)


@pytest.fixture
def app(stub_broker: StubBroker) -> App:
    # Default settings: only public destinations.
    settings.configure(REPORT_URL="https://reports.example/get?task_id={task_id}")
    return make_app(stub_broker)


def body_of(webhooks: Any) -> bytes:
    return json.dumps({"type": "Report", "config": {"webhooks": webhooks}, "components": []}).encode()


def hooks(url: Any = "https://hooks.example/h", **item: Any) -> bytes:
    return body_of([{"url": url, **item}])


GOOD = "https://hooks.example/h"
URL = LOC + [0, "url"]
AUTH = LOC + [0, "auth_header"]

# (id, body, the problems of a 422 as (loc, type)); None means the body goes on to the app,
# which finds no webhooks in it (it is not JSON, or not an object with a config object).
TABLE: list[tuple[str, bytes, list[tuple[list[Any], str]] | None]] = [
    # Types
    ("webhooks-an-object", body_of({"url": GOOD}), [(LOC, "list_type")]),
    ("webhooks-a-string", body_of(GOOD), [(LOC, "list_type")]),
    ("webhooks-a-number", body_of(3), [(LOC, "list_type")]),
    ("webhooks-true", body_of(True), [(LOC, "list_type")]),
    ("webhooks-nan", b'{"config": {"webhooks": NaN}}', [(LOC, "list_type")]),
    ("item-null", body_of([None]), [(LOC + [0], "dict_type")]),
    ("item-a-list", body_of([[GOOD]]), [(LOC + [0], "dict_type")]),
    ("item-a-number", body_of([1]), [(LOC + [0], "dict_type")]),
    ("url-a-list", hooks([GOOD]), [(URL, "string_type")]),
    ("url-an-object", hooks({"href": GOOD}), [(URL, "string_type")]),
    ("url-true", hooks(True), [(URL, "string_type")]),
    ("url-infinity", b'{"config": {"webhooks": [{"url": 1e999}]}}', [(URL, "string_type")]),
    ("auth-a-number", hooks(auth_header=12345), [(AUTH, "string_type")]),
    ("auth-a-list", hooks(auth_header=["a"]), [(AUTH, "string_type")]),
    ("auth-false", hooks(auth_header=False), [(AUTH, "string_type")]),
    # Sizes
    ("four-webhooks", body_of([{"url": GOOD}] * 4), [(LOC, "too_many")]),
    ("ten-thousand-webhooks", body_of([{"url": GOOD}] * 10_000)[:MAX_BODY], None),  # Cut short: not JSON.
    ("two-thousand-webhooks", body_of([{}] * 2_000),
     [(LOC, "too_many")] + [(LOC + [n, "url"], "missing") for n in range(3)]),
    ("url-2049", hooks("https://hooks.example/" + "a" * 2027), [(URL, "url_too_long")]),
    ("url-60k", hooks("https://hooks.example/" + "a" * 60_000), [(URL, "url_too_long")]),
    ("auth-1025", hooks(auth_header="a" * 1025), [(AUTH, "auth_header_too_long")]),
    ("unknown-key-50k-long", body_of([{"url": GOOD, "k" * 50_000: 1}]),
     [(LOC + [0, "k" * 61 + "..."], "extra_forbidden")]),
    ("label-64-long", hooks("https://%s.example/h" % ("a" * 64)), [(URL, "url_host_invalid")]),
    # Encodings
    ("utf-16-with-bom", hooks("ftp://x").decode().encode("utf-16"), [(URL, "url_scheme")]),
    ("utf-16-le-no-bom", hooks("ftp://x").decode().encode("utf-16-le"), [(URL, "url_scheme")]),
    ("utf-32", hooks("ftp://x").decode().encode("utf-32"), [(URL, "url_scheme")]),
    ("utf-8-bom", b"\xef\xbb\xbf" + hooks("ftp://x"), [(URL, "url_scheme")]),
    ("invalid-utf-8", hooks("https://hooks.example/\xe9").replace(b"\\u00e9", b"\xe9"), None),
    ("latin-1-host", b'{"config": {"webhooks": [{"url": "https://b\xfccher.example/"}]}}', None),
    ("lone-surrogate-in-url", b'{"config": {"webhooks": [{"url": "https://h.example/\\ud800"}]}}',
     [(URL, "url_invalid")]),
    ("lone-surrogate-in-auth", b'{"config": {"webhooks": [{"url": "https://h.example/", "auth_header": "\\udfff"}]}}',
     [(AUTH, "auth_header_characters")]),
    ("lone-surrogate-in-a-key", b'{"config": {"webhooks": [{"url": "https://h.example/", "\\ud800": 1}]}}',
     [(LOC + [0, "\\ud800"], "extra_forbidden")]),
    ("nul-in-url", hooks("https://hooks.example/\x00"), [(URL, "url_invalid")]),
    # Duplicate keys on the way to the webhooks: parsers differ in which one they keep.
    ("duplicate-config", b'{"config": {"webhooks": [{"url": "ftp://x"}]}, "config": {}}',
     [(["body", "config"], "duplicate_key")]),
    ("duplicate-webhooks", b'{"config": {"webhooks": [], "webhooks": [{"url": "ftp://x"}]}}',
     [(LOC, "duplicate_key"), (URL, "url_scheme")]),
    ("duplicate-url", b'{"config": {"webhooks": [{"url": "https://h.example/", "url": "http://127.0.0.1/"}]}}',
     [(URL, "duplicate_key")]),
    ("duplicate-auth-header", b'{"config": {"webhooks": [{"url": "https://h.example/", "auth_header": "a", '
     b'"auth_header": "b"}]}}', [(AUTH, "duplicate_key")]),
    ("duplicate-config-escaped", b'{"\\u0063onfig": {"webhooks": []}, "config": {"webhooks": [{"url": "ftp://x"}]}}',
     [(["body", "config"], "duplicate_key"), (URL, "url_scheme")]),
    ("duplicate-url-spaced-config-last", b'{"components": [{"url": "https://h.example/"}], "config": {"webhooks" \n:'
     b' [{"url" : "https://h.example/",\n "url"\t: "http://127.0.0.1/"}]}}', [(URL, "duplicate_key")]),
    ("duplicate-auth-header-beside-webhooks-spelled-in-a-value", b'{"title": "\\"webhooks", "config": {"webhooks": '
     b'[{"url": "https://h.example/", "auth_header": "a", "auth_header": "b"}]}}',
     [(AUTH, "duplicate_key")]),
    ("duplicate-url-escaped", b'{"config": {"webhooks": [{"url": "https://h.example/", "\\u0075rl": "https://h.example/"}]}}',
     [(URL, "duplicate_key")]),
    # Deep nesting
    ("nested-30k-deep", b'{"config": {"webhooks": ' + b"[" * 30_000 + b"]" * 30_000 + b"}}", None),
    ("nested-url", hooks(json.loads("[" * 500 + "]" * 500)), [(URL, "string_type")]),
    ("nested-unknown-key", body_of([{"url": GOOD, "x": json.loads("[" * 500 + "]" * 500)}]),
     [(LOC + [0, "x"], "extra_forbidden")]),
    # Huge numbers
    ("url-a-5000-digit-number", b'{"config": {"webhooks": [{"url": ' + b"9" * 5000 + b"}]}}", None),
    ("auth-a-huge-float", b'{"config": {"webhooks": [{"url": "https://h.example/", "auth_header": 1e308}]}}',
     [(AUTH, "string_type")]),
    # Unicode tricks in URLs
    ("fullwidth-dots-and-digits", hooks("https://\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11/h"),
     [(URL, "url_forbidden_address")]),
    ("ideographic-dots", hooks("https://127\u30020\u30020\u30021/h"), [(URL, "url_forbidden_address")]),
    ("rtl-override-in-host", hooks("https://hooks\u202eelpmaxe.com/h"), [(URL, "url_invalid")]),
    ("zero-width-space-in-host", hooks("https://hoo\u200bks.example/h"), [(URL, "url_invalid")]),
    ("zero-width-joiner-in-path", hooks("https://hooks.example/a\u200db"), [(URL, "url_invalid")]),
    ("bom-in-url", hooks("https://hooks.example/\ufeff"), [(URL, "url_invalid")]),
    ("no-break-space-in-url", hooks("https://hooks.example/a\u00a0b"), [(URL, "url_invalid")]),
    ("line-separator-in-url", hooks("https://hooks.example/\u2028"), [(URL, "url_invalid")]),
    ("percent-encoded-host", hooks("https://%31%32%37.0.0.1/h"), [(URL, "url_host_invalid")]),
    ("numeric-host-out-of-range", hooks("https://256.0.0.1/h"), [(URL, "url_host_invalid")]),
    ("five-part-numeric-host", hooks("https://1.2.3.4.5/h"), [(URL, "url_host_invalid")]),
    ("decimal-loopback", hooks("http://2130706433/h"), [(URL, "url_forbidden_address")]),
    ("hex-loopback", hooks("http://0x7f.1/h"), [(URL, "url_forbidden_address")]),
    ("octal-loopback", hooks("http://0177.0.0.1/h"), [(URL, "url_forbidden_address")]),
    ("mapped-metadata", hooks("http://[::ffff:169.254.169.254]/latest/meta-data"), [(URL, "url_forbidden_address")]),
    ("backslash-userinfo-trick", hooks("https://hooks.example\\@127.0.0.1/"), [(URL, "url_invalid")]),
    # Unicode tricks in the auth header
    ("auth-rtl-override", hooks(auth_header="abc\u202edef"), [(AUTH, "auth_header_characters")]),
    ("auth-zero-width", hooks(auth_header="abc\u200bdef"), [(AUTH, "auth_header_characters")]),
    ("auth-fullwidth", hooks(auth_header="\uff41\uff42\uff43"), [(AUTH, "auth_header_characters")]),
    ("auth-line-separator", hooks(auth_header="abc\u2028X-Evil: 1"), [(AUTH, "auth_header_characters")]),
    ("auth-crlf", hooks(auth_header="abc\r\nX-Evil: 1"), [(AUTH, "auth_header_characters")]),
    # config not an object, and other shapes the app judges
    ("config-a-list", b'{"config": [{"webhooks": [{"url": "ftp://x"}]}]}', None),
    ("config-a-string", b'{"config": "webhooks"}', None),
    ("report-a-list", b'[{"config": {"webhooks": [{"url": "ftp://x"}]}}]', None),
    ("trailing-garbage", hooks("ftp://x") + b"}", None),
    ("empty-body", b"", None),
    ("duplicate-key-elsewhere", b'{"options": {}, "options": {}, "config": {"webhooks": []}}', None),
]


def test_the_table_has_at_least_forty_rows() -> None:
    assert len({name for name, _, _ in TABLE}) == len(TABLE) >= 40


@pytest.mark.parametrize(
    ("body", "expected"), [pytest.param(body, expected, id=name) for name, body, expected in TABLE]
)
def test_a_malformed_submission(app: App, body: bytes, expected: list[tuple[list[Any], str]] | None) -> None:
    answer = app.submit(body)
    assert answer.status < 500
    if expected is None:
        assert answer.status in (200, 400), answer.body
        assert all(seen["webhooks"] == () for seen in app.seen)
    else:
        assert answer.status == 422, answer.body
        detail = answer.json()["detail"]
        assert [(problem["loc"], problem["type"]) for problem in detail] == expected
        assert all(problem["msg"] for problem in detail)
        assert len(answer.body) < 4096  # Nothing submitted is echoed back at length.
        assert app.seen == []
    assert app.enqueued() == []


def test_a_body_over_the_cap_is_413_declared_or_streamed(app: App) -> None:
    body = hooks("ftp://x") + b" " * MAX_BODY
    assert app.submit(body).status == 413
    assert app.submit(b"", chunks=[body[:MAX_BODY // 2], body[MAX_BODY // 2:]], content_length=False).status == 413
    assert app.seen == [] and app.enqueued() == []


@pytest.mark.parametrize("url", [
    "https://b\u00fccher.example/h", "https://hooks.example/caf\u00e9", "https://hooks.example\uff0ecom/h",
    "https://[2606:4700::1111]/h", "https://1.1.1.1:8443/h", "https://hooks.example./h",
])
def test_tricky_but_valid_urls_reach_the_app_and_the_queue(app: App, url: str) -> None:
    answer = app.submit(hooks(url, auth_header="tok"))
    assert answer.status == 200, answer.body
    assert [webhook.url for webhook in app.seen[0]["webhooks"]] == [url]
    assert app.enqueued() == [{"url": url, "auth_header": "tok"}]


def test_a_utf16_body_with_valid_webhooks_reaches_the_app_byte_for_byte(app: App) -> None:
    body = hooks(GOOD).decode().encode("utf-16")
    assert app.submit(body).status == 200
    assert app.seen[0]["body"] == body
    assert app.enqueued() == [{"url": GOOD, "auth_header": None}]


# ---- The fuzz --------------------------------------------------------------------------------

_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
_NAT64 = ip_network("64:ff9b::/96")
_INVISIBLE = {"Cc", "Cf", "Cs", "Co", "Zs", "Zl", "Zp"}


def valid_webhooks(report: Any) -> bool:
    """The documented rules, written again independently (glibc parses the IP literals)."""
    config = report.get("config") if isinstance(report, dict) else None
    webhooks = config.get("webhooks") if isinstance(config, dict) else None
    if webhooks is None:
        return True
    return isinstance(webhooks, list) and len(webhooks) <= 3 and all(valid_item(item) for item in webhooks)


def valid_item(item: Any) -> bool:
    if not isinstance(item, dict) or "url" not in item or set(item) - {"url", "auth_header"}:
        return False
    auth = item.get("auth_header")
    if auth is not None and not (isinstance(auth, str) and len(auth) <= 1024 and _VISIBLE_ASCII.fullmatch(auth)):
        return False
    return valid_url(item["url"])


def valid_url(url: Any) -> bool:
    if not isinstance(url, str) or len(url) > 2048 or "\\" in url:
        return False
    if any(char <= " " or char == "\x7f" or unicodedata.category(char) in _INVISIBLE for char in url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018
    except ValueError:
        return False
    if parts.scheme.lower() not in ("http", "https") or "@" in parts.netloc or not parts.hostname:
        return False
    return public_or_name(parts.hostname)


def public_or_name(host: str) -> bool:
    """False for a host that a resolver reads as a non-public IP address."""
    try:
        # What socket.getaddrinfo does with a str host, then glibc's own parser of numeric forms.
        ascii_form = host.encode("idna").decode()
    except UnicodeError:
        return True  # Not resolvable at all: harmless, whatever the schemas say of it.
    address: IPv4Address | IPv6Address
    try:
        address = IPv4Address(socket.inet_aton(ascii_form))
    except OSError:
        try:
            address = IPv6Address(socket.inet_pton(socket.AF_INET6, ascii_form.split("%", 1)[0]))
        except OSError:
            return True
    if isinstance(address, IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is None and address in _NAT64:
            inner = IPv4Address(int(address) & 0xFFFFFFFF)
        if inner is not None:
            return inner.is_global
    return address.is_global


HOSTS = [
    "hooks.example", "localhost", "127.0.0.1", "127.1", "0x7f.1", "2130706433", "0177.0.0.1", "[::1]",
    "[::ffff:127.0.0.1]", "169.254.169.254", "[64:ff9b::a9fe:a9fe]", "[2002:a9fe:a9fe::]", "10.0.0.1", "0",
    "1.1.1.1", "[2606:4700::1111]", "b\u00fccher.example", "\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11",
    "127\u30020\u30020\u30021", "hoo\u200bks.example", "hooks\u202e.example", "%31%32%37.0.0.1", "256.1.1.1",
    "a..b", "[::]", "0.0.0.0", "[fe80::1%25eth0]", "hooks.example.", "HOOKS.EXAMPLE",
]
def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of ``choices``, each as often as its weight says (st.one_of would merge repeated ones)."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda index: table[index])


_KEYS = st.sampled_from(["config", "webhooks", "url", "auth_header", "type", "x"]) | st.text(max_size=4)
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
_PATHS = st.sampled_from(["", "/", "/hook", "/h?x=1", "/h#f", "/a b", "/\u00e9", "/\u200b", "/\\", "/\r\n", "/%00"])
_PLAUSIBLE_URLS = st.builds(
    lambda scheme, host, port, path: "%s://%s%s%s" % (scheme, host, port, path),
    st.sampled_from(["https", "http"]), st.sampled_from(HOSTS), st.sampled_from(["", ":8443"]),
    st.sampled_from(["", "/hook", "/h?x=1"]),
)
_URLS = weighted(
    (3, _PLAUSIBLE_URLS),
    (1, st.builds(
        lambda scheme, host, port, path: "%s://%s%s%s" % (scheme, host, port, path),
        st.sampled_from(["https", "http", "https", "HTTPS", "ftp", ""]),
        st.sampled_from(HOSTS) | st.text(max_size=10),
        st.sampled_from(["", "", ":443", ":8080", ":99999", ":x"]),
        _PATHS | st.text(max_size=6),
    )),
    (1, st.text(max_size=20)),
    (1, _SCALARS),
)
_AUTH = st.one_of(
    st.none(), st.sampled_from(["tok_123", "a" * 1024, "a" * 1025, "", "a b", "t\u00f6k", "x\r\ny"]),
    st.text(max_size=6), _SCALARS,
)


@dataclass(frozen=True)
class Obj:
    """A JSON object as pairs, so that keys may repeat and be spelled with escapes."""

    pairs: tuple[tuple[str, Any], ...]
    escaped: bool = False


def _obj(*fixed: tuple[str, Any], extra: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[Obj]:
    """Mostly well formed (the ``fixed`` pairs); sometimes with extra, repeated or escaped keys."""
    well_formed = st.tuples(*(st.tuples(st.just(key), value) for key, value in fixed))
    repeated = st.sampled_from([key for key, _ in fixed]).flatmap(lambda key: st.tuples(st.just(key), dict(fixed)[key]))
    odd = st.lists(repeated | extra if extra is not None else repeated, max_size=3)
    return weighted(
        (3, well_formed.map(lambda pairs: Obj(tuple(pairs)))),
        (1, st.builds(
            lambda pairs, more, escaped: Obj(tuple(pairs) + tuple(more), escaped), well_formed, odd, st.booleans()
        )),
    )


_EXTRA = st.tuples(_KEYS, _SCALARS)
_ITEM = weighted(
    (2, _obj(("url", _URLS))), (2, _obj(("url", _URLS), ("auth_header", _AUTH))),
    (1, _obj(("url", _URLS), ("auth_header", _AUTH), extra=_EXTRA)), (1, _SCALARS),
)
_WEBHOOKS = weighted((3, st.lists(_ITEM, min_size=1, max_size=3)), (1, st.lists(_ITEM, max_size=5)), (1, _SCALARS))
_CONFIG = weighted((1, _obj(("webhooks", _WEBHOOKS), extra=_EXTRA)), (3, _obj(("webhooks", _WEBHOOKS))), (1, _SCALARS))
_REPORT = _obj(("type", st.just("Report")), ("config", _CONFIG), extra=_EXTRA)


def dump(value: Any, ensure_ascii: bool) -> str:
    if isinstance(value, Obj):
        return "{%s}" % ", ".join(
            "%s: %s" % (_key(key, value.escaped, ensure_ascii), dump(item, ensure_ascii)) for key, item in value.pairs
        )
    if isinstance(value, list):
        return "[%s]" % ", ".join(dump(item, ensure_ascii) for item in value)
    return json.dumps(value, ensure_ascii=ensure_ascii)


def _key(key: str, escaped: bool, ensure_ascii: bool) -> str:
    if escaped:
        return '"%s"' % "".join("\\u%04x" % ord(char) if char.isascii() else char for char in key)
    return json.dumps(key, ensure_ascii=ensure_ascii)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 19)) == 0:
        return draw(st.binary(max_size=64))
    text = dump(draw(_REPORT), draw(st.booleans()))
    encoding = draw(st.sampled_from(["utf-8"] * 6 + ["utf-8-sig", "utf-16", "utf-16-be", "utf-32-le", "latin-1"]))
    body = text.encode(encoding, "surrogatepass" if encoding.startswith("utf") else "replace")
    mutation = draw(st.sampled_from(["none"] * 8 + ["truncate", "flip", "nest"]))
    if mutation == "truncate" and body:
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif mutation == "flip" and body:
        index = draw(st.integers(0, len(body) - 1))
        body = body[:index] + bytes([draw(st.integers(0, 255))]) + body[index + 1:]
    elif mutation == "nest":
        depth = draw(st.sampled_from([10, 900, 5000]))
        body = b'{"config": {"webhooks": [{"url": ' + b"[" * depth + b"]" * depth + b"}]}}"
    return body


def first_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, value in pairs:
        kept.setdefault(key, value)
    return kept


@pytest.fixture
def fuzz_app(app: App) -> App:
    return app


# A fixed sequence of examples (derandomize), the same in CI as on a laptop; 10 to 20 s.
@hypothesis_settings(
    max_examples=2000, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(body=bodies())
def test_fuzz_the_middleware(fuzz_app: App, body: bytes) -> None:
    # One app for every example: only what the example left behind is reset.
    app = fuzz_app
    app.seen.clear()
    app.broker.flush_all()
    answer = app.submit(body)
    assert answer.status in (200, 400, 413, 422), (answer.status, answer.body)
    if answer.status == 422:
        assert app.seen == []
        assert all(problem["type"] and problem["msg"] for problem in answer.json()["detail"])
    for seen in app.seen:
        # Whichever of the duplicate keys a JSON parser keeps, the webhooks it sees are valid.
        assert valid_webhooks(json.loads(seen["body"]))
        assert valid_webhooks(json.loads(seen["body"], object_pairs_hook=first_wins))
        for webhook in seen["webhooks"]:
            assert valid_item({"url": webhook.url, "auth_header": webhook.auth_header})
    for endpoint in app.enqueued():
        assert valid_item(endpoint)
