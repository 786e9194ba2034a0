"""A Dramatiq middleware that lets a test await what a worker does with messages: holds, acks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
import dramatiq.common
from dramatiq.middleware import Middleware


@dataclass(frozen=True)
class Hold:
    """A delayed message taken off the delay queue, to be held until its eta."""

    message_id: str
    eta: int
    redelivered: bool
    #: How long it is to be held, from when the worker took it (ms).
    length: int


class Recorder(Middleware):
    def __init__(self) -> None:
        self.holds: list[Hold] = []
        self.acks: list[str] = []  # Queue names of acknowledged messages.
        self._changed = threading.Condition()

    def before_delay_message(self, broker: dramatiq.Broker, message: Any) -> None:
        # RabbitMQ marks a delivery that was handed out before and never acknowledged.
        eta = message.options["eta"]
        redelivered = bool(getattr(message, "redelivered", False))
        hold = Hold(message.message_id, eta, redelivered, eta - dramatiq.common.current_millis())
        with self._changed:
            self.holds.append(hold)
            self._changed.notify_all()

    def after_ack(self, broker: dramatiq.Broker, message: Any) -> None:
        with self._changed:
            self.acks.append(message.queue_name)
            self._changed.notify_all()

    def wait_until(self, condition: Callable[[Recorder], bool], timeout: float, what: str) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: condition(self), timeout):
                raise TimeoutError("%s: not within %s s (holds %d, acks %d)." % (
                    what, timeout, len(self.holds), len(self.acks)))

    def acked(self, queue_name: str) -> int:
        return self.acks.count(queue_name)
