"""Keeps a scheduled retry from being held unacked in a worker for longer than a limit.

A Dramatiq worker takes each delayed message off the delay queue at once and holds it, unacked,
until its eta. RabbitMQ closes a channel that holds a delivery unacked for longer than its
``consumer_timeout`` (30 minutes by default) and redelivers everything the channel held, and
the 32 and 64 minute retries are longer than that. So a retry whose delay exceeds the limit is
scheduled for the limit only, with its real due time in the message; when it comes back early
the delivery actor schedules it again for what is left, capped again, without sending anything
or counting an attempt. The receiver sees the same schedule.
"""

from __future__ import annotations

import sys
from typing import Any

import dramatiq

from . import settings

#: Limit of ``RETRY_HOLD_LIMIT = "auto"`` on RabbitMQ: half its default consumer_timeout.
AUTO_RABBITMQ_LIMIT_MILLIS = 15 * 60_000

# Due time (Dramatiq's clock, ms) of a retry that was scheduled in more than one hold.
DUE_OPTION = "hybiscus_webhooks_due"


def limit_millis(broker: dramatiq.Broker) -> int | None:
    """The longest hold on ``broker`` under the settings in force; None for no limit."""
    return resolve(settings.get().RETRY_HOLD_LIMIT, rabbitmq=_is_rabbitmq(broker))


def resolve(value: str | float | None, *, rabbitmq: bool) -> int | None:
    """The limit in ms that a RETRY_HOLD_LIMIT value gives on a RabbitMQ broker or another one."""
    if value == "auto":
        return AUTO_RABBITMQ_LIMIT_MILLIS if rabbitmq else None
    return None if value is None else int(float(value) * 1000)


def _is_rabbitmq(broker: dramatiq.Broker) -> bool:
    # Not imported here: pika is an optional dependency, and a broker of that class exists only
    # once its module has been imported.
    module = sys.modules.get("dramatiq.brokers.rabbitmq")
    return module is not None and isinstance(broker, module.RabbitmqBroker)


def first_hold(options: dict[str, Any], delay: int, limit: int | None, now: int) -> int:
    """The delay to schedule a retry with; records its due time in ``options`` when it is cut short."""
    if limit is None or delay <= limit:
        options.pop(DUE_OPTION, None)
        return delay
    options[DUE_OPTION] = now + delay
    return limit


def next_hold(options: dict[str, Any], limit: int | None, now: int) -> int | None:
    """How much longer a retry that came back before its due time must wait (capped); None once it is due."""
    due = options.get(DUE_OPTION)
    if due is None or due <= now:
        return None
    remaining = int(due) - now
    return remaining if limit is None else min(remaining, limit)
