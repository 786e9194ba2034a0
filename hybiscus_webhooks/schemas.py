"""The ``config.webhooks`` part of a Report definition, validated with marshmallow."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from marshmallow import RAISE, Schema, ValidationError, fields, post_load

from .errors import InvalidWebhooks

#: Longest webhook URL accepted.
MAX_URL_LENGTH = 2048
#: Longest ``auth_header`` accepted.
MAX_AUTH_HEADER_LENGTH = 1024

# One message per problem; its "type" in a 422 body is looked up from the message.
_PROBLEMS = {
    "missing": "Field required.",
    "extra_forbidden": "Unknown field.",
    "null": "Field may not be null.",
    "string_type": "Must be a string.",
    "dict_type": "Each webhook must be an object with a url and an optional auth_header.",
    "list_type": "Must be a list of webhook objects.",
    "too_many": "Too many webhooks.",
    "url_too_long": "Must be at most %d characters." % MAX_URL_LENGTH,
    "url_scheme": "Must be an absolute http or https URL.",
    "url_host": "Must have a host name.",
    "url_userinfo": "Must not contain a user name or password.",
    "url_invalid": "Must be a valid URL without spaces or control characters.",
    "auth_header_empty": "Must not be empty: leave auth_header out or set it to null for no Authorization header.",
    "auth_header_too_long": "Must be at most %d characters." % MAX_AUTH_HEADER_LENGTH,
    "auth_header_characters": "Must contain only visible ASCII characters (no spaces, CR or LF).",
}
_TYPES = {message: kind for kind, message in _PROBLEMS.items()}

_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\]")


@dataclass(frozen=True)
class Webhook:
    """One validated webhook. Its repr never shows the auth header."""

    url: str
    auth_header: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        auth_header = "None" if self.auth_header is None else "'***'"
        return "Webhook(url=%r, auth_header=%s)" % (redact_url(self.url), auth_header)


def redact_url(url: str) -> str:
    """Scheme, host, port and path of ``url``: what may appear in logs and records."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = "[%s]" % host
    try:
        port = parts.port
    except ValueError:
        port = None
    return "%s://%s%s%s" % (parts.scheme, host, ":%d" % port if port else "", parts.path)


def _problem(kind: str) -> ValidationError:
    return ValidationError(_PROBLEMS[kind])


def _validate_url(value: str) -> None:
    if len(value) > MAX_URL_LENGTH:
        raise _problem("url_too_long")
    if _URL_FORBIDDEN.search(value):
        raise _problem("url_invalid")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise _problem("url_invalid") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise _problem("url_scheme")
    if "@" in parts.netloc:
        raise _problem("url_userinfo")
    if not parts.hostname:
        raise _problem("url_host")


def _validate_auth_header(value: str) -> None:
    if not value:
        raise _problem("auth_header_empty")
    if len(value) > MAX_AUTH_HEADER_LENGTH:
        raise _problem("auth_header_too_long")
    if not _VISIBLE_ASCII.fullmatch(value):
        raise _problem("auth_header_characters")


_STRING_ERRORS: dict[str, Any] = {
    "required": _PROBLEMS["missing"], "null": _PROBLEMS["null"], "invalid": _PROBLEMS["string_type"],
}


class WebhookSchema(Schema):
    class Meta:
        unknown = RAISE

    error_messages = {"unknown": _PROBLEMS["extra_forbidden"], "type": _PROBLEMS["dict_type"]}

    url = fields.String(required=True, validate=_validate_url, error_messages=_STRING_ERRORS)
    auth_header = fields.String(
        load_default=None, allow_none=True, validate=_validate_auth_header, error_messages=_STRING_ERRORS
    )

    @post_load
    def make_webhook(self, data: dict[str, Any], **kwargs: Any) -> Webhook:
        return Webhook(url=data["url"], auth_header=data["auth_header"])


_SCHEMA = WebhookSchema()
_LOC = ("body", "config", "webhooks")


def load_webhooks(report: Any, *, max_webhooks: int) -> tuple[Webhook, ...]:
    """The validated webhooks of a parsed Report definition.

    A report that is not an object, a ``config`` that is not an object, and an absent, null or
    empty ``config.webhooks`` all mean no webhooks: whether the rest of the report is valid is
    for the report service to judge. Raises ``InvalidWebhooks`` listing every problem.
    """
    config = report.get("config") if isinstance(report, Mapping) else None
    raw = config.get("webhooks") if isinstance(config, Mapping) else None
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidWebhooks([_as_problem(_LOC, _PROBLEMS["list_type"])])
    problems = []
    if len(raw) > max_webhooks:
        problems.append(
            {"loc": list(_LOC), "msg": "At most %d webhooks are allowed, got %d." % (max_webhooks, len(raw)),
             "type": "too_many"}
        )
        # A long list is an attack or a mistake: judge only the items that could be kept.
        raw = raw[:max_webhooks]
    try:
        webhooks = _SCHEMA.load(raw, many=True)
    except ValidationError as exc:
        problems.extend(_flatten(_LOC, exc.messages))
    if problems:
        raise InvalidWebhooks(problems)
    return tuple(webhooks)


def _flatten(loc: tuple[Any, ...], messages: Any) -> list[dict[str, Any]]:
    if isinstance(messages, Mapping):
        problems = []
        for key in sorted(messages, key=lambda key: (isinstance(key, str), key)):
            child = loc if key == "_schema" else loc + (key,)
            problems.extend(_flatten(child, messages[key]))
        return problems
    if isinstance(messages, list):
        return [problem for message in messages for problem in _flatten(loc, message)]
    return [_as_problem(loc, str(messages))]


def _as_problem(loc: tuple[Any, ...], message: str) -> dict[str, Any]:
    return {"loc": list(loc), "msg": message, "type": _TYPES.get(message, "value_error")}
