"""Keeps a delivery waiting for its retry small.

On every failed attempt Dramatiq's Retries middleware writes the traceback into the message before
putting it back on the delay queue. For a delivery that is ``dramatiq.Retry`` raised by our actor,
whose reason the actor has already logged: about 700 bytes per waiting delivery, half its size,
times every delivery of a receiver that is down. The traceback is dropped when the message is put
back on the delay queue; the attempt's outcome is in the actor's log line.
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.middleware import Middleware


class DropRetryTraceback(Middleware):
    def __init__(self, *, actor_name: str) -> None:
        self.actor_name = actor_name

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        # Only delayed enqueues: the brokers copy the message for those, so the one being processed keeps it.
        if delay and message.actor_name == self.actor_name:
            message.options.pop("traceback", None)
