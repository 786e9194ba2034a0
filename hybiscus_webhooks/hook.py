"""The post-render hook: after a report is built or has failed, one delivery message per webhook."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware

from . import delivery, settings
from .errors import InvalidWebhooks
from .schemas import load_webhooks, parse_report

logger = logging.getLogger(__name__)


def report_completed(task_id: str, report: Any, *, broker: dramatiq.Broker | None = None) -> list[str]:
    """Send ``report.completed`` to each webhook of ``report`` (a dict or JSON text); return the delivery ids."""
    return notify(delivery.COMPLETED, task_id, report, broker=broker)


def report_failed(task_id: str, report: Any, *, broker: dramatiq.Broker | None = None) -> list[str]:
    """Send ``report.failed`` to each webhook of ``report`` (a dict or JSON text); return the delivery ids."""
    return notify(delivery.FAILED, task_id, report, broker=broker)


def notify(event: str, task_id: str, report: Any, *, broker: dramatiq.Broker | None = None) -> list[str]:
    if not isinstance(task_id, str) or not task_id:
        raise ValueError("task_id must be a non-empty string, got %r." % (task_id,))
    if isinstance(report, (str, bytes, bytearray)):
        try:
            report = parse_report(report)
        except (ValueError, RecursionError):
            logger.warning("No webhooks for %s of task %s: the report is not valid JSON.", event, task_id)
            return []
    try:
        webhooks = load_webhooks(report, max_webhooks=settings.get().MAX_WEBHOOKS)
    except InvalidWebhooks as exc:
        # Problems name fields and rules, never the values, so no secret reaches the log.
        logger.warning("No webhooks for %s of task %s: %s", event, task_id, exc)
        return []
    return [delivery.send(event, task_id, webhook, broker=broker) for webhook in webhooks]


class RenderHook(Middleware):
    """Sends ``report.completed`` when the render actor succeeds, ``report.failed`` once it has failed for good.

    ``task_id`` and ``report`` are read from the render message's arguments of those names, or
    by ``extract(message) -> (task_id, report)`` when given.
    """

    def __init__(
        self,
        *,
        actor_name: str,
        task_id_arg: str = "task_id",
        report_arg: str = "report",
        extract: Callable[[MessageProxy], tuple[str, Any]] | None = None,
    ) -> None:
        self.logger = logging.getLogger("%s.%s" % (__name__, type(self).__name__))
        self.actor_name = actor_name
        self.task_id_arg = task_id_arg
        self.report_arg = report_arg
        self.extract = extract

    def after_process_message(
        self, broker: dramatiq.Broker, message: MessageProxy, *, result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        if message.actor_name == self.actor_name and exception is None:
            self._notify(broker, delivery.COMPLETED, message)

    # A message is nacked only once it has failed for good (retries exhausted, a `throws`
    # exception, a skip): unlike after_process_message, this does not depend on whether the
    # Retries middleware has run yet.
    def after_nack(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        if message.actor_name == self.actor_name:
            self._notify(broker, delivery.FAILED, message)

    def _notify(self, broker: dramatiq.Broker, event: str, message: MessageProxy) -> None:
        try:
            task_id, report = self._arguments(broker, message)
        except (LookupError, TypeError, ValueError) as exc:
            self.logger.error(
                "No webhooks for message %r of %s: its task_id and report were not found (%s).",
                message.message_id, self.actor_name, type(exc).__name__,
            )
            return
        notify(event, task_id, report, broker=broker)

    def _arguments(self, broker: dramatiq.Broker, message: MessageProxy) -> tuple[str, Any]:
        if self.extract is not None:
            return self.extract(message)
        bound = inspect.signature(broker.get_actor(self.actor_name).fn).bind_partial(*message.args, **message.kwargs)
        return bound.arguments[self.task_id_arg], bound.arguments[self.report_arg]
