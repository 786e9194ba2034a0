"""What happens to each delivery, told to the records, the metrics and ON_EXHAUSTED.

The delivery actor calls these functions; none of them ever raises into it or waits long:
a delivery matters more than its bookkeeping.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import dramatiq.common

from . import metrics, records, settings
from .records import DELIVERED, EXHAUSTED, PENDING, REFUSED, RESPONSE_HEAD_BYTES, RETRYING, Attempt
from .schemas import Webhook
from .sender import Outcome

logger = logging.getLogger(__name__)

# Query values shorter than this are too common to redact without mangling the rest.
_MIN_REDACTED_LENGTH = 6


@dataclass(frozen=True)
class ExhaustedDelivery:
    """What ON_EXHAUSTED receives: a delivery whose last retry failed. Holds no secret."""

    delivery_id: str
    task_id: str
    event: str
    #: Scheme, host, port and path of the webhook URL.
    endpoint: str
    attempts: int
    #: "HTTP 503", or the class name of the error of the last attempt.
    last_result: str
    #: Unix seconds of the last attempt.
    at: float


def now() -> float:
    # Dramatiq's clock, which also stamps a retry's eta: next_attempt_at then matches the broker's.
    return dramatiq.common.current_millis() / 1000


def pending(delivery: Mapping[str, Any], *, redelivery: bool = False) -> None:
    """A delivery was enqueued; a redelivery resets a finished record to pending."""
    _write(delivery, state=PENDING, at=now(), only_if_new=not redelivery)


def attempted(
    delivery: Mapping[str, Any], endpoint: Webhook, *, number: int, started: float, outcome: Outcome,
    retry_in: int | None,
) -> None:
    """An attempt ended; ``retry_in`` is the delay in ms before the next one, None if there is none."""
    try:
        state = DELIVERED if outcome.ok else EXHAUSTED if retry_in is None else RETRYING
        attempt = Attempt(number, started, outcome.status, outcome.error, round(outcome.elapsed, 6),
                          _response_head(outcome.response_head, endpoint))
        finished = now()
        next_attempt_at = finished + retry_in / 1000 if state == RETRYING and retry_in is not None else None
        _write(delivery, state=state, at=finished, attempt=attempt, next_attempt_at=next_attempt_at)
        metrics.attempt(delivery["event"], outcome.status, outcome.error, outcome.elapsed)
        if state == RETRYING:
            metrics.retry_scheduled(delivery["event"])
        elif state == EXHAUSTED:
            metrics.exhausted(delivery["event"])
            _call_on_exhausted(ExhaustedDelivery(
                delivery["id"], delivery["task_id"], delivery["event"], delivery["endpoint"], number,
                attempt.result(), started,
            ))
    except Exception:
        logger.exception("Could not track attempt %d of delivery %s.", number, delivery.get("id"))


def refused(delivery: Mapping[str, Any], *, number: int, started: float) -> None:
    """The destination was refused before any request was made."""
    try:
        attempt = Attempt(number, started, None, "DestinationRefused", 0.0)
        _write(delivery, state=REFUSED, at=now(), attempt=attempt)
        metrics.refused(delivery["event"])
    except Exception:
        logger.exception("Could not track the refusal of delivery %s.", delivery.get("id"))


def _write(delivery: Mapping[str, Any], **fields: Any) -> None:
    try:
        backend = records.current()
        if backend is None:
            return
    except Exception as exc:  # A bad RECORDS_REDIS_URL or a missing redis package.
        logger.warning("Delivery records are unavailable: %s", exc)
        metrics.record_failed()
        return
    try:
        backend.write(delivery, **fields)
    except Exception as exc:
        # The class name only: a Redis error's text can hold addresses, never worth the risk.
        logger.warning(
            "Could not record %s of delivery %s in %s: %s.",
            fields["state"], delivery["id"], backend.describe(), type(exc).__name__,
        )
        metrics.record_failed()


def _call_on_exhausted(exhausted: ExhaustedDelivery) -> None:
    callback = settings.get().ON_EXHAUSTED
    if callback is None:
        return
    try:
        callback(exhausted)
    except Exception:
        logger.exception("ON_EXHAUSTED raised for delivery %s; the delivery is dead-lettered anyway.",
                         exhausted.delivery_id)


def _response_head(head: bytes, endpoint: Webhook) -> str:
    """The start of an answer, with anything of the endpoint's secrets a receiver echoed blanked out."""
    if not head:
        return ""  # Most answers (204s): no URL to parse.
    text = head.decode("utf-8", "replace")
    query = urlsplit(endpoint.url).query
    secrets = {endpoint.auth_header or "", query}
    secrets.update(value for _, value in parse_qsl(query) if len(value) >= _MIN_REDACTED_LENGTH)
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "[redacted]")
    return text[:RESPONSE_HEAD_BYTES]
