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
