from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hybiscus_webhooks.destinations import AddressPolicy
from hybiscus_webhooks.sender import Sender
from hybiscus_webhooks.testing import Receiver

from .hostile import Listener, answer

SECRET = "tok_c0ffee15600d"
CASSETTES = Path(__file__).parent / "cassettes" / "test_sender"
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer " + SECRET}
BODY = b'{"event":"report.completed","task_id":"t","url":"https://r.example/t"}'


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    # The receiver's port changes from run to run; what identifies a request is the rest.
    return {
        "filter_headers": [("authorization", "REDACTED")],
        "match_on": ["method", "scheme", "path", "query", "body"],
        "decode_compressed_response": True,
    }


def make_sender(**options: Any) -> Sender:
    options = {
        "connect_timeout": 2.0, "read_timeout": 2.0, "max_response_bytes": 64,
        # These receivers listen on loopback.
        "policy": AddressPolicy(allow_private=True), **options,
    }
    return Sender(**options)


@pytest.mark.vcr
@pytest.mark.block_network
@pytest.mark.parametrize(("status", "ok"), [(200, True), (204, True), (302, False), (404, False), (503, False)])
def test_recorded_answers(status: int, ok: bool) -> None:
    # Recorded against a Receiver with: pytest --record-mode=once tests/test_sender.py
    with Receiver([status], response_body=b"x" * 100) as receiver:
        outcome = make_sender().post(receiver.url + "/hook", BODY, HEADERS)
    assert outcome.status == status
    assert outcome.ok is ok
    assert outcome.error is None
    # Capped at max_response_bytes; a 204 has no body by definition.
    assert outcome.response_head == (b"" if status == 204 else b"x" * 64)
    assert outcome.describe() == "HTTP %d" % status


def test_cassettes_hold_no_secret() -> None:
    cassettes = sorted(CASSETTES.glob("*.yaml"))
    assert len(cassettes) == 5
    for cassette in cassettes:
        text = cassette.read_text()
        assert SECRET not in text and "REDACTED" in text


def test_a_redirect_is_not_followed() -> None:
    with Receiver([302]) as receiver:
        outcome = make_sender().post(receiver.url + "/hook", BODY, HEADERS)
        assert outcome.status == 302
        assert [request.path for request in receiver.requests] == ["/hook"]


def test_a_pooled_connection_is_reused() -> None:
    with Receiver() as receiver:
        sender = make_sender()
        for _ in range(3):
            assert sender.post(receiver.url + "/hook", BODY, HEADERS).ok
        ports = {request.headers.get("host") for request in receiver.requests}
        assert len(ports) == 1
        port = int(receiver.url.rsplit(":", 1)[1])
        assert sender.pools.get("http", "127.0.0.1", port, "127.0.0.1").num_connections == 1


def test_a_refused_connection() -> None:
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        outcome = make_sender().post("http://127.0.0.1:%d/" % bound.getsockname()[1], BODY, HEADERS)
    assert outcome.status is None and not outcome.ok
    assert outcome.error == "NewConnectionError"


@pytest.fixture
def silent_listener() -> Iterator[tuple[socket.socket, list[socket.socket]]]:
    """Accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener, accepted
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def test_a_receiver_that_never_answers_times_out(silent_listener: Any) -> None:
    listener, accepted = silent_listener
    outcome = make_sender(read_timeout=0.3).post("http://127.0.0.1:%d/" % listener.getsockname()[1], BODY, HEADERS)
    assert outcome.error == "ReadTimeoutError" and outcome.status is None
    assert 0.3 <= outcome.elapsed < 5
    assert len(accepted) == 1


def test_a_connection_that_is_never_accepted_times_out() -> None:
    # A listener with a full accept queue drops further SYNs, so connect() hangs.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(address)
            fillers.append(filler)
        try:
            outcome = make_sender(connect_timeout=0.3).post("http://%s:%d/" % address, BODY, HEADERS)
        finally:
            for filler in fillers:
                filler.close()
    assert outcome.error == "ConnectTimeoutError", outcome


def test_new_settings_close_the_connections_of_the_sender_they_replace(receiver: Receiver) -> None:
    from hybiscus_webhooks import settings
    from hybiscus_webhooks.sender import get_sender

    old = get_sender()
    assert old.post(receiver.url + "/hook", b"{}", {}).ok
    [pool] = list(old.pools._pools.values())
    assert pool.num_connections == 1 and pool.pool is not None and pool.pool.qsize() >= 1
    settings.configure(REPORT_URL="https://r.example/{task_id}", ALLOW_PRIVATE_DESTINATIONS=True)
    assert old.pools._pools == {} and pool.pool is None  # Closed: its idle connection with it.
    assert get_sender() is not old


@pytest.fixture
def raw_listener() -> Iterator[Listener]:
    """Answers 204 on loopback; each connection keeps the bytes of its request as they arrived."""
    with Listener(answer(204)) as listener:
        yield listener


def _request(connection_class: Any, port: int, headers: dict[str, str]) -> None:
    connection = connection_class("127.0.0.1", port)
    try:
        connection.request("POST", "/hook?a=1", body=BODY, headers=headers)
        response = connection.getresponse()
        response.read()
        assert response.status == 204
    finally:
        connection.close()


def test_lean_headers_write_the_bytes_urllib3_writes(raw_listener: Listener) -> None:
    import urllib3.connection

    from hybiscus_webhooks import pinned

    headers = {
        **HEADERS, "User-Agent": "hybiscus-webhooks/test", "webhook-id": "msg_1", "webhook-timestamp": "1765100000",
        "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=", "X-Latin": "caf\u00e9",
        "Host": "hooks.example:8080",
    }
    for connection_class in (urllib3.connection.HTTPConnection, pinned._LeanHTTPConnection,
                             pinned._LeanHTTPConnection):
        _request(connection_class, raw_listener.port, headers)
    # The second lean request wrote every header by the short way.
    assert set(headers) | {"Content-Length", "Accept-Encoding"} <= set(pinned._HEADER_STARTS)
    raw_listener.wait_for_requests(3)
    stock, learning, lean = [connection.request for connection in raw_listener.connections]
    assert b"webhook-signature: v1,K5oZ" in stock and b"X-Latin: caf\xe9\r\n" in stock
    assert learning == stock and lean == stock


def test_lean_headers_refuse_what_http_client_refuses(raw_listener: Listener) -> None:
    import urllib3.util

    from hybiscus_webhooks import pinned

    # Every name below has been written once, so that only the value can send it the long way.
    _request(pinned._LeanHTTPConnection, raw_listener.port, {**HEADERS, "User-Agent": "x", "X-Folded": "a"})
    connection = pinned._LeanHTTPConnection("127.0.0.1", raw_listener.port)
    connection.putrequest("POST", "/hook")
    for value in ("Bearer a\r\nX-Injected: 1", "a\nb", "a\rb"):
        with pytest.raises(ValueError, match="Invalid header value"):
            connection.putheader("Authorization", value)
    with pytest.raises(ValueError, match="Invalid header name"):
        connection.putheader("X-Bad:Name", "x")
    with pytest.raises(UnicodeEncodeError):
        connection.putheader("X-Folded", "\u20ac")
    connection.putheader("X-Folded", "a\r\n b")  # http.client allows a folded line; so do we.
    connection.putheader("X-Folded", 7)
    connection.putheader("User-Agent", urllib3.util.SKIP_HEADER)  # urllib3's: no header at all.
    assert connection._buffer == [  # type: ignore[attr-defined]  # The lines written so far.
        b"POST /hook HTTP/1.1", b"Host: 127.0.0.1:%d" % raw_listener.port, b"Accept-Encoding: identity",
        b"X-Folded: a\r\n b", b"X-Folded: 7",
    ]
    connection.close()
    assert "X-Bad:Name" not in pinned._HEADER_STARTS


def test_pools_keep_a_connection_class_put_in_place_of_urllib3s(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib3
    import urllib3.connection

    from hybiscus_webhooks import pinned

    pools = pinned.Pools(timeout=urllib3.Timeout(1.0), ca_bundle=None)
    http = pools.get("http", "127.0.0.1", 80, "127.0.0.1")._new_conn()  # type: ignore[attr-defined]
    https = pools.get("https", "127.0.0.1", 443, "r.example")._new_conn()  # type: ignore[attr-defined]
    assert type(http) is pinned._LeanHTTPConnection and type(https) is pinned._LeanHTTPSConnection
    assert http.response_class is pinned._DeadlineResponse is https.response_class

    class Recorder(urllib3.connection.HTTPConnection):
        pass

    monkeypatch.setattr(urllib3.HTTPConnectionPool, "ConnectionCls", Recorder)
    recorded = pools.get("http", "127.0.0.1", 80, "127.0.0.1")._new_conn()  # type: ignore[attr-defined]
    assert type(recorded) is Recorder and recorded.response_class is pinned._DeadlineResponse
