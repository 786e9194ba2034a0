"""Rows of the tables that the docs generate from the code, so that they cannot drift from it.

Pure functions, free of Sphinx, so that tests/test_docs_examples.py can check them.
"""

from __future__ import annotations

from typing import Any

from hybiscus_webhooks import settings
from hybiscus_webhooks.delivery import MAX_RETRIES, backoff_millis


def settings_rows() -> list[tuple[str, str, str, str]]:
    """(name, type, default, meaning) for every setting, in the order settings.py defines them."""
    return [
        (definition.name, definition.type, format_default(definition.default), definition.doc)
        for definition in settings.DEFINITIONS.values()
    ]


def format_default(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ", ".join(repr(item) for item in value) if value else "(empty)"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1024 * 1024 and value % 1024 == 0:
        return "%d (%s)" % (value, _binary_size(value))
    return repr(value)


def _binary_size(value: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2)):
        if value % size == 0:
            return "%d %s" % (value // size, unit)
    return "%d KiB" % (value // 1024)


def schedule_rows() -> list[tuple[str, str, str]]:
    """(attempt, wait after the previous attempt, time after the first attempt) for every attempt."""
    rows = [("1", "none", "0")]
    elapsed = 0
    for retry in range(MAX_RETRIES):
        delay = backoff_millis(retry) // 1000
        elapsed += delay
        rows.append((str(retry + 2), format_delay(delay), "+" + format_duration(elapsed)))
    return rows


def format_delay(seconds: int) -> str:
    """A wait as the Hybiscus documentation states it: seconds under a minute, else whole minutes."""
    if seconds < 60 or seconds % 60:
        return format_duration(seconds)
    return "%d min" % (seconds // 60)


def format_duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "min"), (seconds, "s")]
    return " ".join("%d %s" % (amount, unit) for amount, unit in parts if amount) or "0 s"
