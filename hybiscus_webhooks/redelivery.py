"""Sending a task's webhooks again through the delivery actor, with the same ids.

A webhook's URL and auth header are in no record (they are secrets), so a redelivery needs the
original message or the Report definition:

- the dead-letter queue holds the message of every delivery that was exhausted or refused, with
  its URL and auth header, for the broker's dead-message TTL (7 days by default). Redelivering
  moves it back to the delivery actor's queue as a new message with the same delivery id;
- the Report definition, which the host stores and the operator passes, gives the webhooks of
  any delivery, including one that was delivered and that a customer asks for again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dramatiq

from . import records, settings, tracking
from .deadletters import dead_letters
from .delivery import _ENDPOINT_OPTION, ACTOR_NAME, EVENTS, delivery_id, install, send
from .errors import ImproperlyConfigured, SealBroken
from .schemas import load_webhooks, redact_url
from .sealing import open_endpoint, seal

#: Where a redelivery came from.
DEAD_LETTER = "dead-letter queue"
REPORT = "report"


@dataclass(frozen=True)
class Redelivery:
    delivery_id: str
    task_id: str
    event: str
    endpoint: str
    source: str
    #: Why it was not sent, or None if it was (or would be, in a dry run).
    skipped: str | None = None


def redeliver(
    task_id: str,
    *,
    broker: dramatiq.Broker,
    event: str | None = None,
    endpoint: str | None = None,
    report: Any = None,
    force: bool = False,
    dry_run: bool = False,
) -> list[Redelivery]:
    """Send ``task_id``'s failed deliveries again from the dead-letter queue, and with ``report`` (a Report
    definition, dict or JSON text) any of its deliveries. ``event`` and ``endpoint`` narrow them down."""
    if event is not None and event not in EVENTS:
        raise ImproperlyConfigured("event must be one of %s, got %r." % (", ".join(EVENTS), event))
    wanted = None if endpoint is None else redact_url(endpoint)
    actor = install(broker)
    done: dict[str, Redelivery] = {}

    def match(message: dramatiq.Message[Any]) -> bool:
        delivery = message.args[0] if message.args and isinstance(message.args[0], dict) else {}
        return (delivery.get("task_id") == task_id and event in (None, delivery.get("event"))
                and wanted in (None, delivery.get("endpoint")))

    with dead_letters(broker, actor.queue_name, ACTOR_NAME, match) as letters:
        keys = settings.get().MESSAGE_KEYS
        for letter in letters:
            delivery = letter.message.args[0]
            try:
                # Sealed again with today's first key: the key it was sealed with may be on its way out.
                sealed = seal(open_endpoint(letter.message.options[_ENDPOINT_OPTION], keys), keys)
            except SealBroken as exc:
                done.setdefault(delivery["id"], _redelivery(delivery, DEAD_LETTER, skipped=str(exc)))
                continue  # It stays in the dead-letter queue, for when the keys are right.
            if not dry_run:
                if delivery["id"] not in done:
                    tracking.pending(delivery, redelivery=True)
                    options: dict[str, Any] = {_ENDPOINT_OPTION: sealed}
                    actor.send_with_options(args=(delivery,), **options)
                letter.remove()  # After sending: a crash in between duplicates a webhook, never loses one.
            done.setdefault(delivery["id"], _redelivery(delivery, DEAD_LETTER))

    if report is not None:
        for delivery, webhook in _from_report(task_id, report, event):
            earlier = done.get(delivery["id"])
            if wanted not in (None, delivery["endpoint"]) or (earlier is not None and earlier.skipped is None):
                continue
            in_flight = None if force else _in_flight(delivery["id"])
            if in_flight is None and not dry_run:
                tracking.pending(delivery, redelivery=True)
                send(delivery["event"], task_id, webhook, broker=broker)
            done[delivery["id"]] = _redelivery(delivery, REPORT, skipped=in_flight)
    return list(done.values())


def _redelivery(delivery: Mapping[str, Any], source: str, *, skipped: str | None = None) -> Redelivery:
    return Redelivery(delivery["id"], delivery["task_id"], delivery["event"], delivery["endpoint"], source, skipped)


def _from_report(task_id: str, report: Any, event: str | None) -> list[tuple[dict[str, Any], Any]]:
    if isinstance(report, (str, bytes, bytearray)):
        try:
            report = json.loads(report)
        except ValueError:
            raise ImproperlyConfigured("The report is not valid JSON.") from None
    webhooks = load_webhooks(report, max_webhooks=settings.get().MAX_WEBHOOKS)
    if event is not None:
        events = [event]
    else:
        backend = records.current()
        recorded = [] if backend is None else backend.for_task(task_id)
        events = sorted({record.event for record in recorded})
        if not events:
            raise ImproperlyConfigured(
                "No records say which events task %s had: name one with --event (%s)." % (task_id, ", ".join(EVENTS))
            )
    return [
        ({"id": delivery_id(task_id, name, webhook.url), "task_id": task_id, "event": name,
          "endpoint": redact_url(webhook.url)}, webhook)
        for webhook in webhooks for name in events
    ]


def _in_flight(delivery_id: str) -> str | None:
    backend = records.current()
    record = None if backend is None else backend.get(delivery_id)
    if record is not None and record.state in (records.PENDING, records.RETRYING):
        return "it is %s; --force sends it anyway" % record.state
    return None
