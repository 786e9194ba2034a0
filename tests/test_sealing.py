"""MESSAGE_KEYS: the URL and auth header a delivery message carries are sealed, and keys rotate."""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from hybiscus_webhooks import Webhook, settings
from hybiscus_webhooks.delivery import _ENDPOINT_OPTION, COMPLETED, install, send
from hybiscus_webhooks.errors import ImproperlyConfigured, SealBroken
from hybiscus_webhooks.redelivery import redeliver
from hybiscus_webhooks.sealing import SEALED, MessageKey, new_key, open_endpoint, parse_keys, seal
from hybiscus_webhooks.testing import queued_deliveries

from .conftest import REPORT_URL, Enqueued, require_service, unique

SECRET = "tok_sealed_4b8e1f0a9c"
URL = "https://hooks.customer.example/reports?token=q_71be2"
OLD, NEW = new_key(), new_key()


def keys(*texts: str) -> tuple[MessageKey, ...]:
    return parse_keys("MESSAGE_KEYS", list(texts))


def test_a_sealed_endpoint_holds_neither_the_url_nor_the_auth_header_and_opens_again() -> None:
    entry = seal(Webhook(URL, SECRET), keys(NEW))
    assert list(entry) == [SEALED]
    assert SECRET not in entry[SEALED] and "customer.example" not in entry[SEALED] and "q_71be2" not in entry[SEALED]
    assert open_endpoint(entry, keys(NEW)) == Webhook(URL, SECRET)
    # No auth header survives the trip as None, not as an empty string.
    assert open_endpoint(seal(Webhook(URL), keys(NEW)), keys(NEW)) == Webhook(URL, None)


def test_without_keys_the_endpoint_travels_in_clear_and_opens_with_or_without_keys() -> None:
    entry = seal(Webhook(URL, SECRET), ())
    assert entry == {"url": URL, "auth_header": SECRET}
    # Messages sent before MESSAGE_KEYS was set are still delivered once it is.
    assert open_endpoint(entry, keys(NEW)) == open_endpoint(entry, ()) == Webhook(URL, SECRET)


def test_keys_rotate_the_first_seals_and_every_one_opens() -> None:
    waiting = seal(Webhook(URL, SECRET), keys(OLD))
    assert open_endpoint(waiting, keys(NEW, OLD)) == Webhook(URL, SECRET)
    resealed = seal(open_endpoint(waiting, keys(NEW, OLD)), keys(NEW, OLD))
    assert open_endpoint(resealed, keys(NEW)) == Webhook(URL, SECRET)
    with pytest.raises(SealBroken, match="None of the 1 MESSAGE_KEYS opens"):
        open_endpoint(waiting, keys(NEW))


@pytest.mark.parametrize("entry, key_texts, expected", [
    ({SEALED: "not a token"}, [NEW], "None of the 1 MESSAGE_KEYS opens"),
    ({SEALED: 42}, [NEW], "None of the 1 MESSAGE_KEYS opens"),
    ({SEALED: "x"}, [], "MESSAGE_KEYS is empty in this process"),
])
def test_an_endpoint_that_cannot_be_opened_says_why(entry: dict[str, Any], key_texts: list[str], expected: str) -> None:
    with pytest.raises(SealBroken, match=expected):
        open_endpoint(entry, keys(*key_texts))


@pytest.mark.parametrize("value, expected", [
    ("just-one-string", "MESSAGE_KEYS must be a list of keys"),
    ([NEW, "short"], r"MESSAGE_KEYS\[1\] is not a key: it must be the URL-safe base64 of 32 bytes"),
    ([NEW[:-2] + "!!"], r"MESSAGE_KEYS\[0\] is not a key"),
    ([b"bytes"], r"MESSAGE_KEYS\[0\] must be a string, got bytes"),
])
def test_a_bad_key_is_named_by_its_index_and_never_shown(value: Any, expected: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=expected) as raised:
        settings.configure(REPORT_URL=REPORT_URL, MESSAGE_KEYS=value)
    assert "new-key" in str(raised.value)
    for text in value if isinstance(value, list) else [value]:
        assert str(text) not in str(raised.value)


def test_keys_are_masked_in_reprs_and_in_the_settings_check() -> None:
    current = settings.configure(REPORT_URL=REPORT_URL, MESSAGE_KEYS=[NEW, OLD])
    shown = "%r %s %r" % (current.MESSAGE_KEYS, current.as_dict(), current)
    assert NEW not in shown and OLD not in shown
    assert current.as_dict()["MESSAGE_KEYS"] == "********"


def test_new_key_prints_a_key_that_settings_accept() -> None:
    printed = subprocess.run([sys.executable, "-m", "hybiscus_webhooks", "new-key"], capture_output=True,
                             text=True, check=True).stdout.strip()
    assert len(keys(printed)) == 1 and printed != new_key()


def test_a_sealed_delivery_reaches_its_receiver_with_its_auth_header(
    stub_broker: StubBroker, start_worker: Any, receiver: Any,
) -> None:
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, MESSAGE_KEYS=[NEW])
    send(COMPLETED, "task-1", Webhook(receiver.url + "/hook", SECRET), broker=stub_broker)
    [raw] = stub_broker.queues["hybiscus_webhooks"].queue
    assert SECRET.encode() not in raw and b"/hook" not in raw.split(b'"endpoint"')[0]
    # The test helper opens what it finds, as the worker will.
    [queued] = queued_deliveries(stub_broker)
    assert queued.webhook == Webhook(receiver.url + "/hook", SECRET)
    start_worker(stub_broker)
    [request] = receiver.wait_for(1)
    assert request.headers["authorization"] == "Bearer " + SECRET


def test_a_worker_whose_keys_do_not_open_a_message_sends_nothing_logs_why_and_keeps_it(
    stub_broker: StubBroker, start_worker: Any, receiver: Any, enqueued: Enqueued, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, MESSAGE_KEYS=[OLD])
    send(COMPLETED, "task-2", Webhook(receiver.url + "/hook", SECRET), broker=stub_broker)
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, MESSAGE_KEYS=[NEW])
    start_worker(stub_broker)
    enqueued.wait_for_eta(1)  # Retried, so not lost: it ends in the dead-letter queue for `redeliver`.
    assert receiver.requests == []
    [error] = [record for record in caplog.records if record.levelno == logging.ERROR
               and record.name.startswith("hybiscus_webhooks")]
    assert "Cannot send report.completed of task task-2" in error.getMessage()
    assert "None of the 1 MESSAGE_KEYS opens" in error.getMessage()
    assert SECRET not in caplog.text


def test_redelivery_reseals_a_dead_letter_with_the_first_key_and_keeps_one_it_cannot_open(
    stub_broker: StubBroker,
) -> None:
    settings.configure(REPORT_URL=REPORT_URL, MESSAGE_KEYS=[OLD])
    actor = install(stub_broker)
    for task_id in ("task-old", "task-lost"):
        message = actor.message_with_options(
            args=({"id": "msg_" + task_id, "task_id": task_id, "event": COMPLETED,
                   "report_url": "https://r.example/" + task_id, "endpoint": "https://hooks.customer.example/reports"},),
            **{_ENDPOINT_OPTION: seal(Webhook(URL, SECRET), keys(OLD if task_id == "task-old" else new_key()))})
        stub_broker.dead_letters_by_queue[actor.queue_name].append(message)

    settings.configure(REPORT_URL=REPORT_URL, MESSAGE_KEYS=[NEW, OLD])
    [done] = redeliver("task-old", broker=stub_broker)
    assert done.skipped is None
    [queued] = stub_broker.queues[actor.queue_name].queue
    entry = dramatiq.Message.decode(queued).options[_ENDPOINT_OPTION]
    assert open_endpoint(entry, keys(NEW)) == Webhook(URL, SECRET)

    [kept] = redeliver("task-lost", broker=stub_broker)
    assert kept.skipped is not None and "None of the 2 MESSAGE_KEYS opens" in kept.skipped
    assert len(stub_broker.dead_letters_by_queue[actor.queue_name]) == 1


@pytest.mark.redis
def test_what_redis_holds_of_a_sealed_delivery_shows_no_secret() -> None:
    require_service("Redis", 6379)
    namespace = unique("hwseal")
    broker = RedisBroker(url="redis://127.0.0.1:6379/0", namespace=namespace)
    client = redis.Redis(host="127.0.0.1", port=6379)
    try:
        settings.configure(REPORT_URL=REPORT_URL, MESSAGE_KEYS=[NEW])
        send(COMPLETED, "task-3", Webhook(URL, SECRET), broker=broker)
        stored = b"".join(
            b"".join(client.hgetall(key).values()) if client.type(key) == b"hash"
            else b"".join(client.lrange(key, 0, -1)) if client.type(key) == b"list" else b""
            for key in client.scan_iter(namespace + "*")
        )
        assert b"task-3" in stored  # The message is there ...
        assert SECRET.encode() not in stored and b"q_71be2" not in stored  # ... sealed.
    finally:
        client.delete(*client.scan_iter(namespace + "*"))
        broker.close()
