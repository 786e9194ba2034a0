"""No secret in logs, exceptions, tracebacks or reprs: a full failing delivery with DEBUG on everywhere."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware

from hybiscus_webhooks import Webhook, settings
from hybiscus_webhooks.delivery import COMPLETED, MAX_RETRIES, send
from hybiscus_webhooks.destinations import AddressPolicy
from hybiscus_webhooks.schemas import load_webhooks
from hybiscus_webhooks.sealing import new_key
from hybiscus_webhooks.sender import Sender, _target_of
from hybiscus_webhooks.testing import DramatiqClock

from .conftest import REPORT_URL, Enqueued
from .hostile import Connection, Handler, Listener, answer, close_before_answer, close_mid_response, garbage, hang

SECRET = "tok_S3CRET_9d41d8cd98f00b204e98"
QUERY_SECRET = "qs_7c2a91e0"


class Recorder(Middleware):
    """Every exception the actor raised and every traceback Dramatiq stored in a message's options."""

    def __init__(self) -> None:
        self.exceptions: list[BaseException] = []
        self.tracebacks: list[str] = []

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        if exception is not None:
            self.exceptions.append(exception)

    def after_enqueue(self, broker: dramatiq.Broker, message: Any, delay: Any) -> None:
        if "traceback" in message.options:
            self.tracebacks.append(message.options["traceback"])


def one_per_connection(*handlers: Handler) -> Handler:
    """The n-th connection gets the n-th behaviour; each answer closes its connection."""
    count = iter(range(1_000_000))

    def handle(connection: Connection) -> None:
        index = next(count)
        handlers[min(index, len(handlers) - 1)](connection)

    return handle


def closing(status: int, headers: bytes = b"") -> Handler:
    return answer(status, b"<html>%d</html>" % status, b"Connection: close\r\n" + headers)


NINE_FAILURES = one_per_connection(
    closing(503), garbage, hang, close_mid_response, closing(401, b"WWW-Authenticate: Bearer\r\n"),
    closing(302, b"Location: http://127.0.0.1:1/\r\n"), closing(500), close_before_answer, closing(503),
)


@pytest.fixture
def everything(caplog: pytest.LogCaptureFixture, stub_broker: StubBroker) -> Iterator[Recorder]:
    caplog.set_level(logging.DEBUG)  # The root logger: ours, urllib3's and dramatiq's all propagate to it.
    recorder = Recorder()
    stub_broker.add_middleware(recorder)
    yield recorder


def assert_nowhere(secret: str, caplog: pytest.LogCaptureFixture, recorder: Recorder, broker: StubBroker,
                   capsys: pytest.CaptureFixture[str]) -> None:
    places: dict[str, str] = {"formatted log": caplog.text}
    for index, record in enumerate(caplog.records):
        places["record %d message" % index] = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            places["record %d exception" % index] = "".join(traceback.format_exception(*record.exc_info))
    for index, exception in enumerate(recorder.exceptions):
        places["exception %d" % index] = "%s %r %s" % (exception, exception, "".join(
            traceback.format_exception(type(exception), exception, exception.__traceback__)
        ))
    for index, stored in enumerate(recorder.tracebacks):
        places["stored traceback %d" % index] = stored
    for index, message in enumerate(broker.dead_letters):
        places["dead letter %d traceback" % index] = str(message.options.get("traceback"))
        places["dead letter %d" % index] = str(message)
    captured = capsys.readouterr()
    places["stdout and stderr"] = captured.out + captured.err
    leaks = {name: text[max(0, text.index(secret) - 300):text.index(secret) + 50]
             for name, text in places.items() if secret in text}
    assert leaks == {}


def test_a_full_failing_delivery_at_debug_level_shows_the_secret_nowhere(
    everything: Recorder, stub_broker: StubBroker, start_worker: Any, enqueued: Enqueued, clock: DramatiqClock,
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, CONNECT_TIMEOUT=0.3, READ_TIMEOUT=0.3)
    with Listener(NINE_FAILURES, clock=clock.millis) as listener:
        url = listener.url() + "?sig=" + QUERY_SECRET
        send(COMPLETED, "task-secret", Webhook(url, SECRET), broker=stub_broker)
        start_worker(stub_broker)
        listener.wait_for(1)
        for retry in range(1, MAX_RETRIES + 1):
            clock.now = enqueued.wait_for_eta(retry) / 1000
            listener.wait_for(retry + 1)
        stub_broker.join("hybiscus_webhooks", fail_fast=False)
        requests = [connection.request for connection in listener.connections]

    # It was a real sequence: 9 attempts carrying the secret, every one failed, then a dead letter.
    assert len(requests) == MAX_RETRIES + 1
    assert all(b"Authorization: Bearer " + SECRET.encode() in request for request in requests)
    assert len(stub_broker.dead_letters) == 1 and len(everything.exceptions) == MAX_RETRIES + 1
    # No traceback is stored in a waiting delivery (slim.DropRetryTraceback); the exceptions' own
    # tracebacks are checked below.
    assert everything.tracebacks == []
    # ... logged at DEBUG by every party.
    names = {record.name.split(".")[0] for record in caplog.records if record.levelno == logging.DEBUG}
    assert {"urllib3", "dramatiq"} <= names
    assert any(record.name.startswith("hybiscus_webhooks") and record.levelno == logging.WARNING
               for record in caplog.records)

    assert_nowhere(SECRET, caplog, everything, stub_broker, capsys)
    # The query string may hold a secret too: our own lines never show it (urllib3's DEBUG line of
    # the request does, as it shows every request target).
    ours = [record.getMessage() for record in caplog.records if record.name.startswith("hybiscus_webhooks")]
    assert not [line for line in ours if QUERY_SECRET in line]


def test_a_refused_delivery_at_debug_level_shows_the_secret_nowhere(
    everything: Recorder, stub_broker: StubBroker, start_worker: Any, enqueued: Enqueued, clock: DramatiqClock,
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:
    # The name resolves to loopback (allowed) twice, then to the metadata address.
    answers = iter([["127.0.0.1"], ["127.0.0.1"]])

    def rebinding(host: str, port: int) -> list[str]:
        return next(answers, ["169.254.169.254"])

    settings.configure(REPORT_URL=REPORT_URL, ALLOWED_NETWORKS=["127.0.0.0/8"], RESOLVER=rebinding)
    with Listener(closing(503), clock=clock.millis) as listener:
        send(COMPLETED, "task-secret", Webhook(listener.url("hooks.test"), SECRET), broker=stub_broker)
        start_worker(stub_broker)
        listener.wait_for(1)
        clock.now = enqueued.wait_for_eta(1) / 1000
        listener.wait_for(2)
        clock.now = enqueued.wait_for_eta(2) / 1000
        stub_broker.join("hybiscus_webhooks", fail_fast=False)
    assert len(stub_broker.dead_letters) == 1 and len(enqueued.etas) == 2
    assert "resolves to 169.254.169.254, a link-local address" in caplog.text
    assert_nowhere(SECRET, caplog, everything, stub_broker, capsys)


def test_reprs_and_settings_show_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    [webhook] = load_webhooks({"config": {"webhooks": [{"url": "https://h.example/x", "auth_header": SECRET}]}},
                              max_webhooks=3)
    with Listener(closing(204)) as listener:
        outcome = Sender(connect_timeout=1, read_timeout=1, max_response_bytes=64,
                         policy=AddressPolicy(allow_private=True)).post(
            listener.url(), b"{}", {"Authorization": "Bearer " + SECRET})
    current = settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True)
    texts = [repr(webhook), str(webhook), repr(outcome), outcome.describe(), repr(current), str(current.as_dict())]
    assert all(SECRET not in text for text in texts), texts
    # The sender keeps each URL's parsed target for later attempts; its repr leaves out the query.
    target = _target_of("https://h.example/x?sig=" + QUERY_SECRET)
    assert target.request_uri.endswith(QUERY_SECRET) and QUERY_SECRET not in repr(target)
    assert "'***'" in repr(webhook)


def test_the_arguments_of_dramatiqs_log_records_hold_no_secret(
    everything: Recorder, stub_broker: StubBroker, start_worker: Any, enqueued: Enqueued,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Dramatiq 2 passes the message itself as a log argument, and its repr shows the options, where
    # the endpoint travels: sealed, it shows only a token.
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, MESSAGE_KEYS=[new_key()])
    with Listener(closing(503)) as listener:
        send(COMPLETED, "task-secret", Webhook(listener.url() + "?sig=" + QUERY_SECRET, SECRET), broker=stub_broker)
        start_worker(stub_broker)
        enqueued.wait_for_eta(1)
    assert listener.accepts == 1
    assert any(record.args and any(isinstance(arg, dramatiq.MessageProxy) for arg in record.args)
               for record in caplog.records)
    assert not [record for record in caplog.records if SECRET in repr(record.args)]
    # urllib3 logs every request target, query included; Dramatiq's messages must not.
    assert not [record for record in caplog.records
                if record.name.startswith("dramatiq") and QUERY_SECRET in repr(record.args)]
