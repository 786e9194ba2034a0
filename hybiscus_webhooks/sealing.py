"""The endpoint a delivery message carries (URL and auth header), sealed with MESSAGE_KEYS.

The endpoint travels in the message options, never its arguments, which Dramatiq writes into
its log lines. But whatever shows a whole message would show the options too: a broker's
management UI, a Redis dump, and from Dramatiq 2 the repr of the message it passes as a log
argument. With MESSAGE_KEYS set, the options hold one Fernet token (AES-128-CBC with
HMAC-SHA256) instead. The first key seals; every key opens, so keys rotate without losing a
retry that is waiting.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .errors import ImproperlyConfigured, SealBroken
from .schemas import Webhook

#: The key of the options entry that holds a sealed endpoint.
SEALED = "sealed"


class MessageKey:
    """One Fernet key of MESSAGE_KEYS. Its repr and str never show the key."""

    __slots__ = ("_fernet",)

    def __init__(self, fernet: Fernet) -> None:
        self._fernet = fernet

    @classmethod
    def parse(cls, text: str) -> MessageKey:
        """Decode a key as ``hybiscus-webhooks new-key`` prints it; the error never holds the value."""
        if not isinstance(text, str):
            raise ValueError("must be a string, got %s" % type(text).__name__)
        try:
            return cls(Fernet(text))
        except (ValueError, TypeError):
            raise ValueError("is not a key: it must be the URL-safe base64 of 32 bytes (44 characters)") from None

    def __repr__(self) -> str:
        return "MessageKey('***')"


def new_key() -> str:
    """A new random key for MESSAGE_KEYS."""
    return Fernet.generate_key().decode("ascii")


def parse_keys(name: str, value: Any) -> tuple[MessageKey, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ImproperlyConfigured("%s must be a list of keys (make one with `hybiscus-webhooks new-key`)." % name)
    keys = []
    for index, text in enumerate(value):
        try:
            keys.append(MessageKey.parse(text))
        except ValueError as exc:
            raise ImproperlyConfigured(
                "%s[%d] %s; make one with `hybiscus-webhooks new-key`." % (name, index, exc)) from None
    return tuple(keys)


def seal(endpoint: Webhook, keys: Sequence[MessageKey]) -> dict[str, Any]:
    """The options entry for ``endpoint``: sealed with the first key, or in clear without keys."""
    plain = {"url": endpoint.url, "auth_header": endpoint.auth_header}
    if not keys:
        return plain
    return {SEALED: keys[0]._fernet.encrypt(json.dumps(plain, separators=(",", ":")).encode()).decode("ascii")}


def open_endpoint(entry: Mapping[str, Any], keys: Sequence[MessageKey]) -> Webhook:
    """The endpoint of an options entry, sealed or in clear (sent before MESSAGE_KEYS was set)."""
    if SEALED not in entry:
        return Webhook(entry["url"], entry["auth_header"])
    if not keys:
        raise SealBroken("The message's endpoint is sealed, but MESSAGE_KEYS is empty in this process: "
                         "give every worker and web process the same MESSAGE_KEYS.")
    try:
        plain = MultiFernet([key._fernet for key in keys]).decrypt(entry[SEALED].encode("ascii"))
    except (InvalidToken, AttributeError, UnicodeError):
        raise SealBroken("None of the %d MESSAGE_KEYS opens the message's endpoint: was it sealed with a key "
                         "since removed, or in a process with other keys?" % len(keys)) from None
    values = json.loads(plain)
    return Webhook(values["url"], values["auth_header"])
