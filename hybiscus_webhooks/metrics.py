"""Prometheus metrics of the delivery path (the 'prometheus' extra).

Nothing is imported or registered until the first delivery needs a metric; then the metrics are
registered once on METRICS_REGISTRY (prometheus_client's default registry unless the host names
its own). Without prometheus_client, or with METRICS_REGISTRY = False, every function here does
nothing. Labels are bounded: events, status classes and error class names, never hosts or URLs.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from . import settings

logger = logging.getLogger(__name__)

#: Attempt latency buckets in seconds, up to the default connect + read timeouts.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0)


class Metrics:
    """The library's instruments, registered on one registry."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Histogram

        self.attempts = Counter(
            "hybiscus_webhooks_attempts", "Webhook attempts by event and outcome (2xx, 3xx, 4xx, 5xx or the "
            "error class).", ["event", "outcome"], registry=registry,
        )
        self.latency = Histogram(
            "hybiscus_webhooks_attempt_seconds", "Time from sending a webhook to reading the head of its answer.",
            ["event"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.retries = Counter(
            "hybiscus_webhooks_retries_scheduled", "Failed attempts that were scheduled for another try.",
            ["event"], registry=registry,
        )
        self.exhausted = Counter(
            "hybiscus_webhooks_exhausted", "Deliveries whose last retry failed (dead-lettered).",
            ["event"], registry=registry,
        )
        self.refused = Counter(
            "hybiscus_webhooks_refused", "Deliveries refused because their destination is not allowed.",
            ["event"], registry=registry,
        )
        self.deferred = Counter(
            "hybiscus_webhooks_deferred", "Deliveries put back on the queue, not attempted, because the threads "
            "for slow destinations were taken.", ["event"], registry=registry,
        )
        self.record_failures = Counter(
            "hybiscus_webhooks_record_write_failures", "Delivery records that could not be written.",
            registry=registry,
        )
        # The labelled children of each attempt's two instruments, by (event, outcome): labels()
        # checks and locks on every call, which is most of what counting an attempt costs.
        self._attempt_children: dict[tuple[str, str], tuple[Any, Any]] = {}

    def count_attempt(self, event: str, outcome: str, seconds: float) -> None:
        key = (event, outcome)
        children = self._attempt_children.get(key)
        if children is None:
            # Two threads may both get here; labels() gives both the same children.
            children = self._attempt_children[key] = (self.attempts.labels(event, outcome), self.latency.labels(event))
        children[0].inc()
        children[1].observe(seconds)


_lock = threading.Lock()
# One set of instruments per registry: registering the same names twice on one registry fails.
_by_registry: weakref.WeakKeyDictionary[Any, Metrics] = weakref.WeakKeyDictionary()
_missing_logged = False


def _from_settings() -> Metrics | None:
    registry = settings.get().METRICS_REGISTRY
    return None if registry is False else _on(registry)


# The instruments of METRICS_REGISTRY (None: metrics off), found once rather than on every attempt,
# and found again when the settings change.
_in_force = settings.PerProcess(_from_settings)


def get(registry: Any = None) -> Metrics | None:
    """The instruments on ``registry`` (by default METRICS_REGISTRY), or None when metrics are off."""
    return _in_force.get() if registry is None else _on(registry)


def _on(registry: Any) -> Metrics | None:
    global _missing_logged
    try:
        import prometheus_client
    except ImportError:
        if not _missing_logged:
            _missing_logged = True
            logger.debug("prometheus_client is not installed: no metrics.")
        return None
    if registry is None:
        registry = prometheus_client.REGISTRY
    with _lock:
        found = _by_registry.get(registry)
        if found is None:
            found = _by_registry[registry] = Metrics(registry)
        return found


def outcome_label(status: int | None, error: str | None) -> str:
    """The status class when the receiver answered, else the error's class name."""
    if status is not None:
        return "%dxx" % (status // 100)
    return error or "unknown"


def attempt(event: str, status: int | None, error: str | None, seconds: float) -> None:
    found = get()
    if found is not None:
        found.count_attempt(event, outcome_label(status, error), seconds)


def retry_scheduled(event: str) -> None:
    found = get()
    if found is not None:
        found.retries.labels(event).inc()


def exhausted(event: str) -> None:
    found = get()
    if found is not None:
        found.exhausted.labels(event).inc()


def refused(event: str) -> None:
    found = get()
    if found is not None:
        found.refused.labels(event).inc()


def deferred(event: str) -> None:
    found = get()
    if found is not None:
        found.deferred.labels(event).inc()


def record_failed() -> None:
    found = get()
    if found is not None:
        found.record_failures.inc()
