"""The ``config.webhooks`` part of a Report definition, validated with marshmallow."""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from json.decoder import scanstring  # type: ignore[attr-defined]  # C; typeshed leaves it out.
from typing import Any, cast
from urllib.parse import urlsplit

from marshmallow import RAISE, Schema, ValidationError, fields

from .destinations import InvalidHost, ascii_host
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
    "url_host_invalid": "Must have a valid host name or IP address.",
    "url_forbidden_address": "Must not point to a loopback, private, link-local or other non-public address.",
    "url_https_required": "Must be an https URL.",
    "duplicate_key": "Duplicate key: JSON parsers differ in which value they keep.",
    "url_userinfo": "Must not contain a user name or password.",
    "url_invalid": "Must be a valid URL without spaces or control characters.",
    "auth_header_empty": "Must not be empty: leave auth_header out or set it to null for no Authorization header.",
    "auth_header_too_long": "Must be at most %d characters." % MAX_AUTH_HEADER_LENGTH,
    "auth_header_characters": "Must contain only visible ASCII characters (no spaces, CR or LF).",
}
_TYPES = {message: kind for kind, message in _PROBLEMS.items()}

_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\]")
# Invisible or spacing characters (zero-width, bidi overrides, BOM, no-break spaces, surrogates):
# they make a URL look like another, and resolvers drop or reject them.
_URL_INVISIBLE = frozenset(("Cc", "Cf", "Cs", "Co", "Zs", "Zl", "Zp"))
# Unknown keys are shown in a problem's loc, but only so much of them.
_MAX_SHOWN_KEY = 64


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
    if _URL_FORBIDDEN.search(value) or (not value.isascii() and any(
        unicodedata.category(character) in _URL_INVISIBLE for character in value if not character.isascii()
    )):
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
    host = parts.hostname  # Parsed from the netloc on every read.
    if not host:
        raise _problem("url_host")
    try:
        ascii_host(host)
    except InvalidHost:
        raise _problem("url_host_invalid") from None


def _auth_header_problem(value: str) -> str | None:
    if not value:
        return "auth_header_empty"
    if len(value) > MAX_AUTH_HEADER_LENGTH:
        return "auth_header_too_long"
    # Visible ASCII, 0x21 to 0x7e: printable ASCII but the space. Three C calls cost less than a regex.
    if not (value.isascii() and value.isprintable()) or " " in value:
        return "auth_header_characters"
    return None


def _validate_auth_header(value: str) -> None:
    problem = _auth_header_problem(value)
    if problem is not None:
        raise _problem(problem)


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


# One instance, built once: loading holds no state in it. The Webhook objects are made from what it
# loaded rather than by a post_load hook, which cost about 1.3 us per webhook (bench/README.md).
_SCHEMA = WebhookSchema()
_LOC = ("body", "config", "webhooks")
# dict first: an isinstance check against the Mapping ABC costs about 0.3 us, against dict next to nothing.
_OBJECT = (dict, Mapping)

# URLs the schema has passed: report after report lists the same few webhooks, and marshmallow's
# machinery is most of what judging one costs (bench/README.md, "The floor"). An object of plain
# strings whose URL the schema has passed, and whose auth header (if any) passes the schema's own
# check, is loaded the same way again, so it is not handed to the schema twice. No auth header is
# kept: its check is cheaper than any digest of it would be. URLs longer than MAX_REMEMBERED_URL_LENGTH
# are not kept (they go to the schema each time), so the memory holds at most 1M characters of them.
MAX_REMEMBERED_URLS = 4096
MAX_REMEMBERED_URL_LENGTH = 256
# An OrderedDict: dropping the first key of a plain dict over and over leaves a growing run of empty
# slots that the next look for the first key walks through again (about 3 us a time when full).
_PASSED_URLS: OrderedDict[str, None] = OrderedDict()
_PASSED_LOCK = threading.Lock()


def _passed_before(raw: list[Any]) -> bool:
    """Whether the schema would load each of these objects as it is, having passed its URL before."""
    passed = _PASSED_URLS
    for item in raw:
        if type(item) is not dict:
            return False
        url = item.get("url")
        # Exact types: a subclass of str may load otherwise. The type first: a list is no dict key.
        if type(url) is not str or url not in passed:
            return False
        if len(item) != 1:  # Another key than the URL: only an auth header, null or one the schema passes.
            auth_header = item.get("auth_header", item)
            if len(item) != 2 or not (auth_header is None or (
                    type(auth_header) is str and _auth_header_problem(auth_header) is None)):
                return False
    return True


def _remember_passed(raw: list[Any]) -> None:
    with _PASSED_LOCK:
        for item in raw:
            url = item["url"]  # The schema has passed them all: objects with a URL.
            if type(url) is str and len(url) <= MAX_REMEMBERED_URL_LENGTH and url not in _PASSED_URLS:
                if len(_PASSED_URLS) >= MAX_REMEMBERED_URLS:
                    _PASSED_URLS.popitem(last=False)  # The first remembered goes first.
                _PASSED_URLS[url] = None


class _Duplicated(dict[str, Any]):
    """A JSON object in which some keys appeared more than once (the last value is kept, as json.loads does)."""

    duplicates: frozenset[str] = frozenset()


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) == len(pairs):
        return value
    seen: set[str] = set()
    repeated: set[str] = set()
    for key, _ in pairs:
        (repeated if key in seen else seen).add(key)
    marked = _Duplicated(value)
    marked.duplicates = frozenset(repeated)
    return marked


def parse_report(body: bytes | bytearray | str) -> Any:
    """A Report definition parsed from JSON text, as ``json.loads`` would, noting duplicate keys.

    Raises ``ValueError`` or ``RecursionError`` for text that is not JSON.
    """
    text = body if isinstance(body, str) else bytes(body).decode(json.detect_encoding(body), "surrogatepass")
    # Objects are marked only when a key of the path to the webhooks may appear twice in the text:
    # the slower parse that notices duplicates is then needed, and rarely otherwise.
    if len(text) < READ_FROM and not ("\\" in text and "\\u" in text):  # _escaped, without a call.
        # Short, and no key spelled with escapes: the keys of the path are counted in the whole text,
        # which costs less than reading the top level key by key (bench/README.md).
        report = json.loads(text)
        if not isinstance(report, dict) or "config" not in report:
            return report
        first = text.find('"config"')
        repeated = (text.find('"config"', first + len('"config"')) != -1
                    or _may_repeat_below_config(text, report["config"], 0, len(text), escaped=False))
    else:
        read = _read_object(text)
        if read is None:
            # Not an object, not JSON, or too many keys at the top for the reader: parsed whole, and
            # an object with a config is parsed again by the parse that notices every repeated key.
            report = json.loads(text)
            if not isinstance(report, dict) or "config" not in report:
                return report
            repeated = True
        else:
            # The top level read key by key: a repeated config is known, and the keys below it can
            # only repeat in its value, where they are counted; escapes elsewhere do not matter.
            report, configs, span = read
            repeated = configs > 1 or (span is not None and _may_repeat_below_config(
                text, report["config"], *span, escaped=_escaped(text, *span)))
    return json.loads(text, object_pairs_hook=_object) if repeated else report


#: Characters of a report's text from which its top level is read key by key rather than the keys of
#: the path counted in the whole text.
READ_FROM = 4096
#: Keys at the top of a report beyond which it is parsed whole (a Report definition has a handful).
MAX_TOP_KEYS = 64
# json's own scanner (C): one value from a position, and where it ends. Typeshed leaves it out.
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
# JSON's whitespace, none or more: the match of this pattern is never None.
_whitespace = cast(Callable[[str, int], "re.Match[str]"], re.compile(r"[ \t\n\r]*").match)
_NAME_SEPARATOR = re.compile(r"[ \t\n\r]*:[ \t\n\r]*")  # JSON's whitespace, a colon, JSON's whitespace.


def _read_object(text: str) -> tuple[dict[str, Any], int, tuple[int, int] | None] | None:
    """The top-level object of ``text`` as ``json.loads`` reads it, key by key, each value by json's scanner.

    Returns the object, how many times its "config" key appears (however spelled) and where the last
    config's value starts and ends in ``text``; None for text that is not one object (or not JSON),
    or that has more than MAX_TOP_KEYS keys.
    """
    position = _whitespace(text, 0).end()
    if not text.startswith("{", position):
        return None
    position = _whitespace(text, position + 1).end()
    report: dict[str, Any] = {}
    configs = 0
    span = None
    if not text.startswith("}", position):
        for _ in range(MAX_TOP_KEYS):
            if not text.startswith('"', position):
                return None
            try:
                key, position = scanstring(text, position + 1, True)
                separator = _NAME_SEPARATOR.match(text, position)
                if separator is None:
                    return None
                start = separator.end()
                report[key], position = _SCAN(text, start)
            except (ValueError, StopIteration):
                return None  # Not JSON: json.loads says where.
            if key == "config":
                configs += 1
                span = start, position
            position = _whitespace(text, position).end()
            if text.startswith(",", position):
                position = _whitespace(text, position + 1).end()
            elif text.startswith("}", position):
                break
            else:
                return None
        else:
            return None  # More keys than a report has: parsed whole instead.
    if _whitespace(text, position + 1).end() != len(text):
        return None  # Something after the object.
    return report, configs, span


def _escaped(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] may spell a key with escapes, which counting its spellings cannot see."""
    # A backslash is looked for first: that find is a memchr, and most reports have none (a find of
    # two characters reads 2 KB in 2 us).
    return text.find("\\", start, end) != -1 and text.find("\\u", start, end) != -1


def _may_repeat_below_config(text: str, config: Any, start: int, end: int, *, escaped: bool) -> bool:
    # The keys below config lie in its value, in text[start:end]: count their spellings there alone,
    # from the top down, and stop at the first that may be repeated.
    if not isinstance(config, dict) or "webhooks" not in config:
        return False
    if escaped:
        return True
    if text.count('"webhooks"', start, end) > 1:
        return True
    webhooks = config["webhooks"]
    if not isinstance(webhooks, list):
        return False
    urls = auth_headers = 0
    for item in webhooks:
        if isinstance(item, dict):
            urls += "url" in item
            auth_headers += "auth_header" in item
    if urls and text.count('"url"', start, end) > urls:
        return True
    return auth_headers > 0 and text.count('"auth_header"', start, end) > auth_headers


def _duplicates(value: Any, loc: tuple[Any, ...], keys: Any = None) -> list[dict[str, Any]]:
    if not isinstance(value, _Duplicated):  # As nearly every object is not.
        return []
    return [
        {"loc": list(loc + (_shown(key),)), "msg": _PROBLEMS["duplicate_key"], "type": "duplicate_key"}
        for key in sorted(value.duplicates) if keys is None or key in keys
    ]


def load_webhooks(
    report: Any, *, max_webhooks: int, url_check: Callable[[str], str | None] | None = None
) -> tuple[Webhook, ...]:
    """The validated webhooks of a parsed Report definition.

    A report that is not an object, a ``config`` that is not an object, and an absent, null or
    empty ``config.webhooks`` all mean no webhooks: whether the rest of the report is valid is
    for the report service to judge. ``url_check`` may add a problem for a valid URL: it returns
    the problem's type without the ``url_`` prefix (e.g. "forbidden_address"), or None.
    Raises ``InvalidWebhooks`` listing every problem.
    """
    config = report.get("config") if isinstance(report, _OBJECT) else None
    raw = config.get("webhooks") if isinstance(config, _OBJECT) else None
    # A repeated key on the way makes the webhooks depend on which JSON parser reads the report.
    problems = _duplicates(report, ("body",), ("config",)) + _duplicates(config, ("body", "config"), ("webhooks",))
    if raw is None or raw == []:  # Nothing for the schema to judge.
        if problems:
            raise InvalidWebhooks(problems)
        return ()
    if not isinstance(raw, list):
        raise InvalidWebhooks(problems + [_as_problem(_LOC, _PROBLEMS["list_type"])])
    if len(raw) > max_webhooks:
        problems.append(
            {"loc": list(_LOC), "msg": "At most %d webhooks are allowed, got %d." % (max_webhooks, len(raw)),
             "type": "too_many"}
        )
        # A long list is an attack or a mistake: judge only the items that could be kept.
        raw = raw[:max_webhooks]
    loaded: list[Any] = []
    if _passed_before(raw):
        loaded = raw  # Plain dicts all, so none marked with a repeated key.
    else:
        try:
            loaded = _SCHEMA.load(raw, many=True)
        except ValidationError as exc:
            problems.extend(_flatten(_LOC, exc.messages))
        else:
            _remember_passed(raw)
        for index, item in enumerate(raw):
            if isinstance(item, _Duplicated):
                problems.extend(_duplicates(item, _LOC + (index,)))
    if url_check is not None:
        problems.extend(_url_problems(raw, problems, url_check))
    if problems:
        problems.sort(key=lambda problem: [(isinstance(part, str), part) for part in problem["loc"]])
        raise InvalidWebhooks(problems)
    # An auth_header left out is null: the schema loads it so, and an object passed before may lack it.
    return tuple([Webhook(item["url"], item.get("auth_header")) for item in loaded])


def _url_problems(
    raw: list[Any], problems: list[dict[str, Any]], url_check: Callable[[str], str | None]
) -> list[dict[str, Any]]:
    found = []
    # A URL the schema refused is not judged again. As a rule there is none: no set to build then.
    judged = {tuple(problem["loc"]) for problem in problems} if problems else None
    for index, item in enumerate(raw):
        url = item.get("url") if isinstance(item, _OBJECT) else None
        if not isinstance(url, str) or (judged and _LOC + (index, "url") in judged):
            continue
        kind = url_check(url)
        if kind is not None:
            found.append({"loc": [*_LOC, index, "url"], "msg": _PROBLEMS["url_" + kind], "type": "url_" + kind})
    return found


def _shown(key: Any) -> Any:
    """A key as it may appear in a problem's loc: short, printable, and never a lone surrogate."""
    if not isinstance(key, str) or (key.isascii() and key.isprintable() and len(key) <= _MAX_SHOWN_KEY):
        return key
    shown = ascii(key)[1:-1]
    return shown if len(shown) <= _MAX_SHOWN_KEY else shown[: _MAX_SHOWN_KEY - 3] + "..."


def _flatten(loc: tuple[Any, ...], messages: Any) -> list[dict[str, Any]]:
    if isinstance(messages, Mapping):
        problems = []
        for key in sorted(messages, key=lambda key: (isinstance(key, str), key)):
            child = loc if key == "_schema" else loc + (_shown(key),)
            problems.extend(_flatten(child, messages[key]))
        return problems
    if isinstance(messages, list):
        return [problem for message in messages for problem in _flatten(loc, message)]
    return [_as_problem(loc, str(messages))]


def _as_problem(loc: tuple[Any, ...], message: str) -> dict[str, Any]:
    return {"loc": list(loc), "msg": message, "type": _TYPES.get(message, "value_error")}
