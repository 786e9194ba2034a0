"""What ``hybiscus-webhooks check`` looks at: the broker's middleware against the retry schedule, and reachability.

Each check is a function ``(broker, actor, settings) -> list[Finding]`` that must not raise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.middleware import AgeLimit, Retries, TimeLimit

from . import broker_checks, brokers, holds, metrics, records
from .delivery import MAX_RETRIES, _retry_when, backoff_millis, install
from .errors import ImproperlyConfigured
from .settings import Settings

OK = "ok"
NOTE = "note"
WARNING = "warning"
ERROR = "error"


@dataclass(frozen=True)
class Finding:
    level: str
    message: str

    def __str__(self) -> str:
        return "%s: %s" % (self.level, self.message)


def schedule_millis(values: Settings) -> int:
    """From the first attempt's start to the last one's end, at worst: the delays plus nine timed-out attempts."""
    delays = sum(backoff_millis(retries) for retries in range(MAX_RETRIES))
    return int(delays + (MAX_RETRIES + 1) * (values.CONNECT_TIMEOUT + values.READ_TIMEOUT) * 1000)


def _minutes(millis: float) -> str:
    return "%.1f min" % (millis / 60_000)


def connection(broker: dramatiq.Broker, actor: Any, values: Settings) -> list[Finding]:
    kind = type(broker).__name__
    try:
        if brokers.kind(broker) == "redis":
            broker.client.ping()  # type: ignore[attr-defined]
        elif brokers.kind(broker) == "rabbitmq":
            broker.connection  # type: ignore[attr-defined]  # noqa: B018 (opening it is the check)
        else:
            return [Finding(NOTE, "%s: nothing to connect to." % kind)]
    except Exception as exc:
        # The class name only: the message of a connection error can hold the URL and its password.
        return [Finding(ERROR, "cannot reach the %s (%s)." % (kind, type(exc).__name__))]
    return [Finding(OK, "the %s answers." % kind)]


def retries(broker: dramatiq.Broker, actor: Any, values: Settings) -> list[Finding]:
    found = [middleware for middleware in broker.middleware if isinstance(middleware, Retries)]
    findings = []
    if len(found) > 1:
        findings.append(Finding(WARNING, "the broker has %d Retries middleware: each failed attempt would be "
                                "retried %d times over. Keep one." % (len(found), len(found))))
    if actor.options.get("retry_when") is not _retry_when:
        findings.append(Finding(WARNING, "the delivery actor has no retry_when of its own, so the broker's retry "
                                "settings decide how often it retries: declare it with install(broker)."))
    elif any(middleware.retry_when is not None for middleware in found):
        findings.append(Finding(OK, "the broker's Retries has a retry_when of its own; the delivery actor's "
                                "overrides it, so the schedule holds."))
    else:
        findings.append(Finding(OK, "Retries: the delivery actor retries %d times on its own schedule." % MAX_RETRIES))
    return findings


def age_limit(broker: dramatiq.Broker, actor: Any, values: Settings) -> list[Finding]:
    findings = []
    needed = schedule_millis(values)
    for middleware in broker.middleware:
        if isinstance(middleware, AgeLimit):
            max_age = actor.options.get("max_age", middleware.max_age)
            if max_age and max_age < needed:
                findings.append(Finding(WARNING, (
                    "AgeLimit drops messages older than %s, but the last retry of a delivery can come %s after "
                    "its first attempt: later retries would be skipped. Call install(broker) after adding "
                    "AgeLimit (it exempts the delivery actor), or raise max_age above %d ms."
                ) % (_minutes(max_age), _minutes(needed), needed)))
    return findings


def time_limit(broker: dramatiq.Broker, actor: Any, values: Settings) -> list[Finding]:
    findings = []
    # An attempt takes up to the connect and read timeouts; a second more for the pool and the records.
    needed = int((values.CONNECT_TIMEOUT + values.READ_TIMEOUT + 1) * 1000)
    for middleware in broker.middleware:
        if isinstance(middleware, TimeLimit):
            limit = actor.options.get("time_limit", middleware.time_limit)
            if limit and limit < needed:
                findings.append(Finding(WARNING, (
                    "TimeLimit stops an actor after %d ms, but an attempt to a slow receiver may take up to %d ms "
                    "(CONNECT_TIMEOUT + READ_TIMEOUT); a stopped attempt is retried with Dramatiq's jittered "
                    "backoff instead of the schedule. Raise time_limit or lower the timeouts."
                ) % (limit, needed)))
    return findings


def consumer_timeout(broker: dramatiq.Broker, actor: Any, values: Settings) -> list[Finding]:
    # consumer_timeout cannot be read over AMQP: only rabbitmqctl on the broker's host can (--rabbitmq-node).
    if brokers.kind(broker) != "rabbitmq":
        return []
    longest = broker_checks.longest_hold_millis(holds.limit_millis(broker))
    return [Finding(NOTE, (
        "a worker holds a scheduled retry unacked for up to %s (RETRY_HOLD_LIMIT); RabbitMQ's consumer_timeout "
        "(30 min by default) must exceed that. Run check --rabbitmq-node on the broker's host to read it."
    ) % _minutes(longest))]


def check_rabbitmq_node(node: str | None, values: Settings) -> list[Finding]:
    try:
        problem = broker_checks.check_rabbitmq_node(node, values.RETRY_HOLD_LIMIT)
    except broker_checks.BrokerCheckFailed as exc:
        return [Finding(ERROR, str(exc))]
    if problem is not None:
        return [Finding(WARNING, problem)]
    return [Finding(OK, "RabbitMQ's consumer_timeout leaves room for every retry hold.")]


#: Checks of the host's broker, in order. Add a check by appending a function of the same shape.
BROKER_CHECKS: list[Callable[[dramatiq.Broker, Any, Settings], list[Finding]]] = [
    connection, retries, age_limit, time_limit, consumer_timeout,
]


def check_broker(broker: dramatiq.Broker, values: Settings) -> list[Finding]:
    try:
        actor = install(broker)  # The actor as a worker would declare it, on this process's copy of the broker.
    except ImproperlyConfigured as exc:
        return [Finding(ERROR, str(exc))]
    findings = []
    for check in BROKER_CHECKS:
        try:
            findings.extend(check(broker, actor, values))
        except Exception as exc:
            findings.append(Finding(WARNING, "the %s check failed: %s." % (check.__name__, type(exc).__name__)))
    return findings


def check_records(broker: dramatiq.Broker | None) -> list[Finding]:
    try:
        backend = records.from_settings(broker)
    except ImproperlyConfigured as exc:
        return [Finding(ERROR, str(exc))]
    if backend is None:
        return [Finding(NOTE, "delivery records are off: set RECORDS_REDIS_URL, or use a RedisBroker.")]
    try:
        backend.ping()
    except Exception as exc:
        return [Finding(WARNING, "cannot reach the delivery records, %s (%s); deliveries go on unrecorded."
                        % (backend.describe(), type(exc).__name__))]
    return [Finding(OK, "delivery records: %s." % backend.describe())]


def check_signing_and_metrics(values: Settings) -> list[Finding]:
    count = len(values.SIGNING_SECRETS)
    findings = [Finding(OK, "webhooks are signed with %d secret(s)." % count) if count
                else Finding(NOTE, "webhooks are not signed: set SIGNING_SECRETS so receivers can verify them.")]
    keys = len(values.MESSAGE_KEYS)
    findings.append(Finding(OK, "delivery messages are sealed (%d key(s) in MESSAGE_KEYS)." % keys) if keys
                    else Finding(NOTE, "delivery messages carry URLs and auth headers in clear: set MESSAGE_KEYS "
                                 "(`hybiscus-webhooks new-key`) so the broker and Dramatiq's logs never hold them."))
    if values.METRICS_REGISTRY is False:
        findings.append(Finding(NOTE, "metrics are off (METRICS_REGISTRY = False)."))
    elif metrics.get() is None:
        findings.append(Finding(NOTE, "metrics are off: prometheus_client is not installed."))
    else:
        findings.append(Finding(OK, "metrics are registered on %s." % (
            "the default registry" if values.METRICS_REGISTRY is None else "METRICS_REGISTRY")))
    return findings
