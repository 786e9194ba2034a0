"""Standard Webhooks signatures: pure functions, no I/O.

A signed attempt carries ``webhook-id``, ``webhook-timestamp`` (unix seconds of the attempt) and
``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, one per secret,
space separated, so receivers can rotate secrets without losing a webhook.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import HybiscusWebhooksError, ImproperlyConfigured

#: Prefix of a secret in its text form.
SECRET_PREFIX = "whsec_"
#: Decoded length range of a secret, as the Standard Webhooks spec gives it.
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
#: Receivers reject timestamps further than this from their clock (seconds).
DEFAULT_TOLERANCE = 300


class InvalidSignature(HybiscusWebhooksError):
    """A webhook's signature headers are missing, stale or do not match any secret."""


class SigningSecret:
    """One decoded ``whsec_`` secret. Its repr and str never show the key."""

    __slots__ = ("_key", "_keyed")

    def __init__(self, key: bytes) -> None:
        if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
            raise ValueError("a signing key must be %d to %d bytes" % (MIN_SECRET_BYTES, MAX_SECRET_BYTES))
        self._key = key
        # Keyed once: each signature copies it, rather than looking up SHA-256 and keying it again.
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)

    @classmethod
    def parse(cls, text: str) -> SigningSecret:
        """Decode ``whsec_<base64>``; the error says what is wrong, never the value."""
        if not isinstance(text, str) or not text.startswith(SECRET_PREFIX):
            raise ValueError("must be a string starting with %r" % SECRET_PREFIX)
        try:
            key = base64.b64decode(text[len(SECRET_PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("is not valid base64 after %r" % SECRET_PREFIX) from None
        if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
            raise ValueError(
                "must decode to %d to %d bytes, got %d" % (MIN_SECRET_BYTES, MAX_SECRET_BYTES, len(key))
            )
        return cls(key)

    def sign(self, content: bytes) -> str:
        mac = self._keyed.copy()
        mac.update(content)
        return binascii.b2a_base64(mac.digest(), newline=False).decode("ascii")

    def __repr__(self) -> str:
        return "<SigningSecret>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SigningSecret) and hmac.compare_digest(self._key, other._key)

    def __hash__(self) -> int:
        return hash(self._key)


def parse_secrets(name: str, value: Any) -> tuple[SigningSecret, ...]:
    """Validate a list of ``whsec_`` secrets, naming a bad one by its position only."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ImproperlyConfigured("%s must be a list of 'whsec_...' strings." % name)
    secrets = []
    for position, text in enumerate(value):
        if isinstance(text, SigningSecret):
            secrets.append(text)
            continue
        try:
            secrets.append(SigningSecret.parse(text))
        except ValueError as exc:
            raise ImproperlyConfigured("%s[%d] %s." % (name, position, exc)) from None
    return tuple(secrets)


def signed_content(webhook_id: str, timestamp: int, body: bytes) -> bytes:
    return b"%s.%d.%s" % (webhook_id.encode(), timestamp, body)


def signature(secrets: Iterable[SigningSecret], webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<sig>`` per secret, space separated."""
    content = signed_content(webhook_id, timestamp, body)
    return " ".join("v1," + secret.sign(content) for secret in secrets)


def headers(secrets: Sequence[SigningSecret], webhook_id: str, timestamp: float, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt; without secrets only the id."""
    if not secrets:
        return {"webhook-id": webhook_id}
    seconds = int(timestamp)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(seconds),
        "webhook-signature": signature(secrets, webhook_id, seconds, body),
    }


def verify(
    secrets: Sequence[SigningSecret],
    request_headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> str:
    """Check a webhook's signature headers against ``body``; return its id or raise ``InvalidSignature``.

    ``request_headers`` must be case-insensitive or use lower-case names (Starlette's are).
    """
    if not secrets:
        raise ImproperlyConfigured("verify() needs at least one signing secret.")
    webhook_id = request_headers.get("webhook-id")
    timestamp_text = request_headers.get("webhook-timestamp")
    signatures = request_headers.get("webhook-signature")
    if not webhook_id or not timestamp_text or not signatures:
        raise InvalidSignature("The webhook-id, webhook-timestamp and webhook-signature headers are required.")
    try:
        timestamp = int(timestamp_text)
    except ValueError:
        raise InvalidSignature("webhook-timestamp must be whole unix seconds.") from None
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature("webhook-timestamp is more than %d seconds from now." % tolerance)
    content = signed_content(webhook_id, timestamp, body)
    offered = [
        candidate[3:].encode("ascii", "replace") for candidate in signatures.split() if candidate.startswith("v1,")
    ]
    for secret in secrets:
        expected = secret.sign(content).encode("ascii")
        # Compare with every offered signature, so timing says nothing about which one matched.
        matches = [hmac.compare_digest(expected, candidate) for candidate in offered]
        if True in matches:
            return webhook_id
    raise InvalidSignature("No webhook-signature matches a configured secret.")
