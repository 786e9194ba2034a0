"""Signatures checked by the Standard Webhooks reference implementation (the ``standardwebhooks`` package)."""

from __future__ import annotations

import base64
import itertools
import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import standardwebhooks
from dramatiq.brokers.stub import StubBroker
from freezegun import freeze_time

from hybiscus_webhooks import ImproperlyConfigured, Webhook, settings, signing
from hybiscus_webhooks.delivery import COMPLETED, delivery_id, send
from hybiscus_webhooks.testing import DramatiqClock, Receiver

from .conftest import REPORT_URL, Enqueued

# Fixed, made-up secrets: 32 and 24 bytes.
SECRET_A = "whsec_" + base64.b64encode(bytes(range(32))).decode()
SECRET_B = "whsec_" + base64.b64encode(b"another-signing-key-24b!").decode()
BODY = b'{"event":"report.completed","task_id":"t-1","url":"https://r.example/get-report?task_id=t-1"}'
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


def sign_now(*secrets: str, webhook_id: str = "msg_1", body: bytes = BODY) -> dict[str, str]:
    parsed = signing.parse_secrets("SIGNING_SECRETS", list(secrets))
    return signing.headers(parsed, webhook_id, datetime.now(tz=timezone.utc).timestamp(), body)


@freeze_time(NOW)
def test_the_reference_implementation_accepts_our_signature() -> None:
    headers = sign_now(SECRET_A)
    assert headers["webhook-timestamp"] == str(int(NOW.timestamp()))
    assert headers["webhook-signature"].startswith("v1,")
    assert standardwebhooks.Webhook(SECRET_A).verify(BODY, headers) == json.loads(BODY)


@freeze_time(NOW)
def test_a_tampered_body_fails_the_reference_check() -> None:
    headers = sign_now(SECRET_A)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError, match="No matching signature"):
        standardwebhooks.Webhook(SECRET_A).verify(BODY.replace(b"t-1", b"t-2"), headers)


@pytest.mark.parametrize("field", ["webhook-id", "webhook-timestamp"])
@freeze_time(NOW)
def test_a_changed_id_or_timestamp_fails_the_reference_check(field: str) -> None:
    headers = sign_now(SECRET_A)
    headers[field] = "msg_2" if field == "webhook-id" else str(int(NOW.timestamp()) - 1)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SECRET_A).verify(BODY, headers)


def test_an_old_timestamp_fails_the_reference_check() -> None:
    with freeze_time(NOW) as frozen:
        headers = sign_now(SECRET_A)
        frozen.tick(timedelta(minutes=4, seconds=59))
        standardwebhooks.Webhook(SECRET_A).verify(BODY, headers)
        frozen.tick(timedelta(seconds=2))
        with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError, match="too old"):
            standardwebhooks.Webhook(SECRET_A).verify(BODY, headers)


@freeze_time(NOW)
def test_one_signature_per_secret_so_either_secret_verifies_during_rotation() -> None:
    headers = sign_now(SECRET_A, SECRET_B)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (SECRET_A, SECRET_B):
        standardwebhooks.Webhook(secret).verify(BODY, headers)
    stranger = "whsec_" + base64.b64encode(b"x" * 32).decode()
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(stranger).verify(BODY, headers)


@freeze_time(NOW)
def test_our_verify_agrees_with_the_reference_signer() -> None:
    reference = standardwebhooks.Webhook(SECRET_B)
    signature = reference.sign("msg_9", NOW, BODY.decode())
    headers = {"webhook-id": "msg_9", "webhook-timestamp": str(int(NOW.timestamp())),
               "webhook-signature": "v1,bm90LWEtc2lnbmF0dXJl " + signature}
    secrets = signing.parse_secrets("secrets", [SECRET_A, SECRET_B])
    assert signing.verify(secrets, headers, BODY, now=NOW.timestamp()) == "msg_9"


@pytest.mark.parametrize(("change", "message"), [
    ({"webhook-signature": None}, "headers are required"),
    ({"webhook-timestamp": "soon"}, "whole unix seconds"),
    ({"webhook-timestamp": str(int(NOW.timestamp()) - 301)}, "more than 300 seconds"),
    ({"webhook-timestamp": str(int(NOW.timestamp()) + 301)}, "more than 300 seconds"),
    ({"webhook-signature": "v2,abc"}, "No webhook-signature matches"),
])
def test_our_verify_rejects(change: dict[str, Any], message: str) -> None:
    with freeze_time(NOW):
        headers = sign_now(SECRET_A)
    headers.update(change)
    headers = {name: value for name, value in headers.items() if value is not None}
    with pytest.raises(signing.InvalidSignature, match=message):
        signing.verify(signing.parse_secrets("s", [SECRET_A]), headers, BODY, now=NOW.timestamp())


def test_without_secrets_only_the_id_is_sent() -> None:
    assert signing.headers((), "msg_1", 1.0, BODY) == {"webhook-id": "msg_1"}


@pytest.mark.parametrize(("value", "message"), [
    ("whsec_abc", "must be a list"),
    ([SECRET_A, "whsec_" + base64.b64encode(b"short").decode()], r"SIGNING_SECRETS\[1\] must decode to 24 to 64"),
    (["whsec_" + base64.b64encode(b"x" * 65).decode()], r"SIGNING_SECRETS\[0\] must decode to 24 to 64 bytes, got 65"),
    (["sk_" + SECRET_A], r"SIGNING_SECRETS\[0\] must be a string starting with 'whsec_'"),
    (["whsec_not*base64!"], r"SIGNING_SECRETS\[0\] is not valid base64"),
    ([42], r"SIGNING_SECRETS\[0\] must be a string"),
])
def test_bad_secrets_are_named_by_position_never_by_value(value: Any, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message) as raised:
        settings.configure(SIGNING_SECRETS=value)
    for secret in value if isinstance(value, list) else [value]:
        if isinstance(secret, str):
            assert secret[6:] not in str(raised.value)


def test_secrets_are_masked_in_settings_and_reprs() -> None:
    configured = settings.configure(SIGNING_SECRETS=[SECRET_A])
    key_text = SECRET_A[6:]
    assert configured.as_dict()["SIGNING_SECRETS"] == "********"
    assert key_text not in repr(configured.SIGNING_SECRETS) and key_text not in str(configured.SIGNING_SECRETS[0])
    assert signing.parse_secrets("s", [SECRET_A]) == configured.SIGNING_SECRETS


def test_every_attempt_is_signed_anew_and_the_reference_accepts_each(
    stub_broker: StubBroker, start_worker: Any, enqueued: Enqueued, clock: DramatiqClock, receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, SIGNING_SECRETS=[SECRET_A, SECRET_B])
    receiver.statuses = [500]
    url = receiver.url + "/signed"
    before = int(datetime.now(tz=timezone.utc).timestamp())
    send(COMPLETED, "task-s", Webhook(url, "tok_signing_test"), broker=stub_broker)
    start_worker(stub_broker)
    receiver.wait_for(1)
    clock.now = enqueued.wait_for_eta(1) / 1000
    first, second = receiver.wait_for(2)
    after = int(datetime.now(tz=timezone.utc).timestamp())

    for request in (first, second):
        # Real time in the worker, real time here: the reference checks the 5-minute window too.
        assert standardwebhooks.Webhook(SECRET_B).verify(request.body, request.headers)["task_id"] == "task-s"
        assert before <= int(request.headers["webhook-timestamp"]) <= after
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery_id("task-s", COMPLETED, url)
    for secret in (SECRET_A, SECRET_B):
        assert secret[6:] not in caplog.text
    assert list(itertools.chain(first.headers, second.headers)).count("webhook-signature") == 2
