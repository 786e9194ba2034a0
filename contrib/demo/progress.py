"""What the demo shows as it happens: notes from the worker, the receivers and the server, on one queue."""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware

from hybiscus_webhooks.delivery import ACTOR_NAME as DELIVERY_ACTOR

from ..receiver import Arrival
from ..report_server import RENDER_ACTOR, TaskStore


@dataclass(frozen=True)
class Note:
    at: float
    who: str
    what: str
    #: Set for what a receiver got, so that the demo can tell when the samples have arrived.
    arrival: Arrival | None = None
    receiver: str | None = None

    def line(self) -> str:
        return "%s  %-15s %s" % (clock(self.at), self.who, self.what)


def clock(at: float) -> str:
    return datetime.fromtimestamp(at).strftime("%H:%M:%S")


def short(task_id: Any) -> str:
    return "%s..." % str(task_id)[:8]


class Progress(Middleware):
    """Puts a note on ``notes`` as the worker renders and delivers; never raises into the worker."""

    def __init__(self, notes: queue.Queue[Note], store: TaskStore) -> None:
        self.notes = notes
        self.store = store

    def _note(self, what: str) -> None:
        self.notes.put(Note(time.time(), "worker", what))

    # Before the message is on the queue, so before any worker can start on it.
    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int) -> None:
        if message.actor_name == RENDER_ACTOR and not message.options.get("retries"):
            task_id = message.args[0]
            report = self.store.get_report(task_id) or {}
            webhooks = (report.get("config") or {}).get("webhooks") or []
            title = (report.get("options") or {}).get("report_title")
            self.notes.put(Note(time.time(), "server", "queued task %s %r with %d webhook%s"
                                % (short(task_id), title, len(webhooks), "" if len(webhooks) == 1 else "s")))

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        if message.actor_name == RENDER_ACTOR:
            self._note("rendering task %s" % short(message.args[0]))

    # Runs before the Retries middleware (middleware added later runs earlier after a message),
    # so options["retries"] still counts the earlier attempts of this one.
    def after_process_message(
        self, broker: dramatiq.Broker, message: MessageProxy, *, result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        if message.actor_name == RENDER_ACTOR:
            task = short(message.args[0])
            if exception is None:
                self._note("rendered task %s" % task)
            else:
                self._note("render of task %s failed: %s" % (task, exception))
        elif message.actor_name == DELIVERY_ACTOR:
            delivery = message.args[0]
            what = "%s of task %s to %s" % (delivery["event"], short(delivery["task_id"]), delivery["endpoint"])
            attempt = message.options.get("retries", 0) + 1
            if exception is None:
                self._note("delivered %s (attempt %d)" % (what, attempt))
            elif isinstance(exception, dramatiq.Retry) and exception.delay is not None:
                next_at = time.time() + exception.delay / 1000
                self._note("failed attempt %d of %s: %s; next attempt at %s"
                           % (attempt, what, _reason(exception), clock(next_at)))
            else:
                self._note("gave up on %s after attempt %d: %s" % (what, attempt, _reason(exception)))


def _reason(exception: BaseException) -> str:
    # The delivery actor's messages end with what the attempt got, e.g. "... failed: HTTP 503."
    return str(exception).rsplit(": ", 1)[-1].rstrip(".")
