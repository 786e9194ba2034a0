"""The delivery actor: one message per webhook, retried on an exact, jitter-free schedule.

Dramatiq's Retries middleware always adds jitter to the backoff it computes, so each failed
attempt raises ``dramatiq.Retry`` with the delay of the schedule instead; the actor's own
``retry_when`` caps the count, whatever the host set broker-wide.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import dramatiq
import dramatiq.broker
import dramatiq.common
from dramatiq.middleware import CurrentMessage, Retries

from . import compact, holds, metrics, records, settings, signing, slow_destinations, tracking
from .errors import BrokerNotConfigured, DeliveryFailed, DestinationRefused, ImproperlyConfigured, SealBroken
from .schemas import Webhook, redact_url
from .sealing import open_endpoint, seal
from .sender import USER_AGENT, Outcome, get_sender
from .slim import DropRetryTraceback

logger = logging.getLogger(__name__)

#: Name of the delivery actor on every broker.
ACTOR_NAME = "hybiscus_webhooks.deliver"
#: Delay before the first retry; each later one doubles it.
RETRY_BASE_MILLIS = 30_000
#: Retries after the first attempt: 30 s, 1, 2, 4, 8, 16, 32 and 64 min.
MAX_RETRIES = 8
#: Events a webhook announces.
COMPLETED = "report.completed"
FAILED = "report.failed"
EVENTS = (COMPLETED, FAILED)

# The URL and auth header travel in the message options, not its arguments: Dramatiq writes
# a message's arguments into its log lines, never its options. MESSAGE_KEYS seal them (sealing.py).
_ENDPOINT_OPTION = "hybiscus_webhooks_endpoint"
# How many times a delivery was put back for a slot at a slow destination since its last attempt.
_DEFERRALS_OPTION = "hybiscus_webhooks_deferrals"
_DELIVERY_NAMESPACE = uuid.UUID("6f1b4bde-5d7e-4c39-9a53-4c1d1e0f2b6a")


def backoff_millis(retries: int) -> int:
    """Delay before retry number ``retries + 1``: 30 s, then doubling."""
    return RETRY_BASE_MILLIS * (1 << retries)


def delivery_id(task_id: str, event: str, url: str) -> str:
    """The id of one task's event at one endpoint: the same across retries and redeliveries."""
    return "msg_" + uuid.uuid5(_DELIVERY_NAMESPACE, "\n".join((task_id, event, url))).hex


def body_of(event: str, task_id: str, report_url: str) -> bytes:
    return compact.dumps({"event": event, "task_id": task_id, "url": report_url}).encode()


def _retry_when(retries: int, exception: BaseException) -> bool:
    # Set on the actor so that a broker-wide retry_when cannot change our schedule.
    return retries < MAX_RETRIES


def request_of(delivery: Mapping[str, Any], auth_header: str | None) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one attempt, signed now when SIGNING_SECRETS are set."""
    body = body_of(delivery["event"], delivery["task_id"], delivery["report_url"])
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    headers.update(signing.headers(settings.get().SIGNING_SECRETS, delivery["id"], time.time(), body))
    if auth_header is not None:
        headers["Authorization"] = "Bearer %s" % auth_header
    return body, headers


def _delivery_on(broker: dramatiq.Broker) -> Callable[[dict[str, Any]], None]:
    # The actor's function: a retry held in parts is scheduled again on the broker that ran it.
    def deliver(delivery: dict[str, Any]) -> None:
        _deliver(broker, delivery)

    return deliver


def _deliver(broker: dramatiq.Broker, delivery: dict[str, Any]) -> None:
    message = CurrentMessage.get_current_message()
    if message is None:
        raise ImproperlyConfigured("The delivery actor needs the CurrentMessage middleware; use install(broker).")
    options = message.options  # Read once: on the message a worker hands over, a Python call each time.
    # Most messages were never held in parts: the limit is looked up only for those that were, or fail.
    if holds.DUE_OPTION in options:
        wait = holds.next_hold(options, holds.limit_millis(broker), dramatiq.common.current_millis())
        if wait is not None:
            # Back before its due time: not an attempt. Hold it again for what is left.
            logger.debug("Retry of %s of task %s is due in %d ms; holding it again.", delivery["event"],
                         delivery["task_id"], wait)
            broker.enqueue(message, delay=wait)
            return
    endpoint = _open(options, delivery)
    tracker = slow_destinations.current()
    destination = None if tracker is None else slow_destinations.destination_of(endpoint.url)
    if tracker is not None and destination is not None:
        turn = tracker.enter(destination, waited=_DEFERRALS_OPTION in options)
        if turn is not None:
            _defer(broker, message, delivery, destination, int(turn * 1000), slow=tracker.is_marked(destination))
            return
    # From here on it is an attempt: a retry it may lead to starts with no deferrals.
    options.pop(_DEFERRALS_OPTION, None)
    retries = options.get("retries", 0)
    outcome: Outcome | None = None
    try:
        outcome = _attempt(delivery, endpoint, retries=retries)
    finally:
        if tracker is not None and destination is not None:
            elapsed, error = (0.0, None) if outcome is None else (outcome.elapsed, outcome.error)
            tracker.leave(destination, elapsed=elapsed, error=error)
    _conclude(broker, message, delivery, outcome, retries=retries)


def _open(options: Mapping[str, Any], delivery: Mapping[str, Any]) -> Webhook:
    """The delivery's URL and auth header, from the message's options."""
    try:
        return open_endpoint(options[_ENDPOINT_OPTION], settings.get().MESSAGE_KEYS)
    except SealBroken as exc:
        # Not an attempt, and never a lost webhook: retried, then dead-lettered for `redeliver`
        # once the keys are right again.
        logger.error("Cannot send %s of task %s to %s: %s", delivery["event"], delivery["task_id"],
                     delivery["endpoint"], exc)
        raise


def _attempt(delivery: Mapping[str, Any], endpoint: Webhook, *, retries: int) -> Outcome:
    """The attempt after ``retries``, recorded; raises ``DestinationRefused`` (recorded too) for a destination never
    allowed."""
    number = retries + 1
    started = tracking.now()
    try:
        body, headers = request_of(delivery, endpoint.auth_header)
        outcome = get_sender().post(endpoint.url, body, headers)
    except DestinationRefused as exc:
        logger.warning(
            "Refused %s of task %s to host %s, for good (no retries): %s",
            delivery["event"], delivery["task_id"], _host(delivery["endpoint"]), exc,
        )
        tracking.refused(delivery, number=number, started=started)
        raise
    last = retries >= MAX_RETRIES
    tracking.attempted(delivery, endpoint, number=number, started=started, outcome=outcome,
                       retry_in=None if outcome.ok or last else backoff_millis(retries))
    return outcome


def _conclude(broker: dramatiq.Broker, message: dramatiq.Message[Any], delivery: Mapping[str, Any], outcome: Outcome,
              *, retries: int) -> None:
    """Log the attempt's end; raise for Dramatiq to retry it on the schedule, or to dead-letter it after the last."""
    attempt, where = retries + 1, delivery["endpoint"]
    if outcome.ok:
        # DEBUG: at INFO this line costs a quarter of a worker's deliveries per second; the records
        # and the metrics count successes. Its arguments are not even made unless it is logged.
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "Delivered %s of task %s to %s: %s on attempt %d in %.3f s.",
                delivery["event"], delivery["task_id"], where, outcome.describe(), attempt, outcome.elapsed,
            )
        return
    if retries >= MAX_RETRIES:
        logger.warning(
            "Gave up on %s of task %s to host %s after %d attempts; last: %s. The message is dead-lettered.",
            delivery["event"], delivery["task_id"], _host(where), attempt, outcome.describe(),
        )
        raise DeliveryFailed("Last attempt (%d) to %s failed: %s." % (attempt, where, outcome.describe()))
    delay = backoff_millis(retries)
    logger.info(
        "Attempt %d of %s of task %s to %s failed: %s; next attempt in %d s.",
        attempt, delivery["event"], delivery["task_id"], where, outcome.describe(), delay // 1000,
    )
    hold = holds.first_hold(message.options, delay, holds.limit_millis(broker), dramatiq.common.current_millis())
    raise dramatiq.Retry("Attempt %d to %s failed: %s." % (attempt, where, outcome.describe()), delay=hold)


def _defer(broker: dramatiq.Broker, message: dramatiq.Message[Any], delivery: Mapping[str, Any],
           destination: slow_destinations.Destination, wait: int, *, slow: bool) -> None:
    # Not an attempt: the retry count, the records and the schedule of the attempts stay as they are.
    message.options[_DEFERRALS_OPTION] = message.options.get(_DEFERRALS_OPTION, 0) + 1
    logger.debug("%s of task %s waits %d ms for %s %s%s.", delivery["event"], delivery["task_id"], wait,
                 "a free slot at slow destination" if slow else "a turn at",
                 slow_destinations.describe(destination),
                 "" if slow else ", which has not answered in this worker process yet")
    metrics.deferred(delivery["event"])
    broker.enqueue(message, delay=holds.first_hold(message.options, wait, holds.limit_millis(broker),
                                                   dramatiq.common.current_millis()))


def _host(endpoint: str) -> str:
    return endpoint.split("://", 1)[-1].split("/", 1)[0]


_install_lock = threading.Lock()
# Room beyond the sender's own bounds for signing, records and the broker round trips of one attempt.
_TIME_LIMIT_MARGIN = 30_000


def install(broker: dramatiq.Broker | None = None) -> dramatiq.Actor[Any, Any]:
    """Declare the delivery actor on ``broker`` (by default the one set with ``dramatiq.set_broker``).

    Safe to call more than once. Adds the CurrentMessage middleware if the broker lacks it.
    """
    broker = _resolve(broker)
    records.bind(broker)
    with _install_lock:
        if ACTOR_NAME in broker.get_declared_actors():
            return broker.get_actor(ACTOR_NAME)
        if not any(isinstance(middleware, Retries) for middleware in broker.middleware):
            raise ImproperlyConfigured(
                "The broker has no Retries middleware, so failed webhooks would never be retried: "
                "add dramatiq.middleware.Retries() to it."
            )
        if not any(isinstance(middleware, CurrentMessage) for middleware in broker.middleware):
            broker.add_middleware(CurrentMessage())
        if not any(isinstance(middleware, DropRetryTraceback) for middleware in broker.middleware):
            broker.add_middleware(DropRetryTraceback(actor_name=ACTOR_NAME))
        if not any(isinstance(middleware, records.FlushRecords) for middleware in broker.middleware):
            broker.add_middleware(records.FlushRecords())
        if not any(isinstance(middleware, slow_destinations.WorkerThreads) for middleware in broker.middleware):
            broker.add_middleware(slow_destinations.WorkerThreads())
        options: dict[str, Any] = {
            "max_retries": MAX_RETRIES,
            "min_backoff": RETRY_BASE_MILLIS,
            "retry_when": _retry_when,
            "throws": (DeliveryFailed, DestinationRefused),
        }
        if "max_age" in broker.actor_options:
            options["max_age"] = None  # A broker-wide age limit must not cut the 2-hour schedule short.
        if "time_limit" in broker.actor_options:
            # A broker-wide limit shorter than one attempt would interrupt an attempt that may have
            # been answered 2xx, and retry it on Dramatiq's jittered backoff: a duplicate off schedule.
            current = settings.get()
            options["time_limit"] = int((current.CONNECT_TIMEOUT + current.READ_TIMEOUT) * 1000) + _TIME_LIMIT_MARGIN
        declare = dramatiq.actor(actor_name=ACTOR_NAME, queue_name=settings.get().QUEUE_NAME, broker=broker, **options)
        return declare(_delivery_on(broker))


def _resolve(broker: dramatiq.Broker | None) -> dramatiq.Broker:
    if broker is not None:
        return broker
    # Not dramatiq.get_broker(): it would make up a RabbitMQ broker nobody asked for.
    if dramatiq.broker.global_broker is None:
        raise BrokerNotConfigured(
            "No Dramatiq broker is set: call dramatiq.set_broker(...) before sending webhooks "
            "or starting a worker, or pass broker= explicitly."
        )
    return dramatiq.broker.global_broker


def send(event: str, task_id: str, webhook: Webhook, *, broker: dramatiq.Broker | None = None) -> str:
    """Enqueue one delivery and return its id."""
    if event not in EVENTS:
        raise ValueError("event must be one of %s, got %r." % (", ".join(EVENTS), event))
    template = settings.get().REPORT_URL
    if template is None:
        raise ImproperlyConfigured(
            "REPORT_URL is not set: set it to the URL of get-report with a {task_id} placeholder."
        )
    actor = install(broker)
    delivery = {
        "id": delivery_id(task_id, event, webhook.url),
        "event": event,
        "task_id": task_id,
        "report_url": template.format(task_id=quote(task_id, safe="")),
        "endpoint": redact_url(webhook.url),
    }
    secret_options: dict[str, Any] = {_ENDPOINT_OPTION: seal(webhook, settings.get().MESSAGE_KEYS)}
    actor.send_with_options(args=(delivery,), **secret_options)
    tracking.pending(delivery)
    return str(delivery["id"])
