"""Prometheus metrics, checked by scraping them: from the registry's text exposition and over real HTTP."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import prometheus_client
import pytest
import urllib3
from dramatiq.brokers.stub import StubBroker
from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.parser import text_string_to_metric_families

from hybiscus_webhooks import ImproperlyConfigured, Webhook, metrics, settings
from hybiscus_webhooks.delivery import COMPLETED, FAILED, send
from hybiscus_webhooks.testing import DramatiqClock, Receiver

from .conftest import REPORT_URL, Enqueued

#: A registry for the import-path form of METRICS_REGISTRY.
HOST_REGISTRY = CollectorRegistry()


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the text exposition, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_every_metric_is_exposed_with_bounded_labels() -> None:
    registry = CollectorRegistry()
    settings.configure(METRICS_REGISTRY=registry)
    metrics.attempt(COMPLETED, 204, None, 0.03)
    metrics.attempt(COMPLETED, 503, None, 0.2)
    metrics.attempt(FAILED, None, "ConnectTimeoutError", 5.0)
    metrics.retry_scheduled(COMPLETED)
    metrics.exhausted(FAILED)
    metrics.refused(COMPLETED)
    metrics.record_failed()
    samples = scrape(generate_latest(registry).decode())
    assert samples[("hybiscus_webhooks_attempts_total", (("event", COMPLETED), ("outcome", "2xx")))] == 1
    assert samples[("hybiscus_webhooks_attempts_total", (("event", COMPLETED), ("outcome", "5xx")))] == 1
    assert samples[("hybiscus_webhooks_attempts_total", (("event", FAILED), ("outcome", "ConnectTimeoutError")))] == 1
    assert samples[("hybiscus_webhooks_attempt_seconds_bucket", (("event", COMPLETED), ("le", "0.05")))] == 1
    assert samples[("hybiscus_webhooks_attempt_seconds_bucket", (("event", COMPLETED), ("le", "0.25")))] == 2
    assert samples[("hybiscus_webhooks_attempt_seconds_count", (("event", FAILED),))] == 1
    assert samples[("hybiscus_webhooks_retries_scheduled_total", (("event", COMPLETED),))] == 1
    assert samples[("hybiscus_webhooks_exhausted_total", (("event", FAILED),))] == 1
    assert samples[("hybiscus_webhooks_refused_total", (("event", COMPLETED),))] == 1
    assert samples[("hybiscus_webhooks_record_write_failures_total", ())] == 1


@pytest.fixture
def exposition() -> Iterator[tuple[CollectorRegistry, str]]:
    """The host's way of exposing metrics, here prometheus_client's WSGI app on a loopback port."""
    registry = CollectorRegistry()

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server: WSGIServer = make_server("127.0.0.1", 0, make_wsgi_app(registry), handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield registry, "http://127.0.0.1:%d/metrics" % server.server_port
    server.shutdown()
    thread.join()
    server.server_close()


def test_a_delivery_with_a_retry_scraped_over_http(
    exposition: tuple[CollectorRegistry, str], stub_broker: StubBroker, start_worker: Any, enqueued: Enqueued,
    clock: DramatiqClock, receiver: Receiver,
) -> None:
    registry, url = exposition
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, METRICS_REGISTRY=registry)
    receiver.statuses = [502]
    send(COMPLETED, "task-m1", Webhook(receiver.url + "/hook"), broker=stub_broker)
    start_worker(stub_broker)
    clock.now = enqueued.wait_for_eta(1) / 1000
    receiver.wait_for(2)
    stub_broker.join("hybiscus_webhooks", fail_fast=False)

    with urllib3.PoolManager() as pool:
        response = pool.request("GET", url)
    assert response.status == 200
    samples = scrape(response.data.decode())
    assert samples[("hybiscus_webhooks_attempts_total", (("event", COMPLETED), ("outcome", "5xx")))] == 1
    assert samples[("hybiscus_webhooks_attempts_total", (("event", COMPLETED), ("outcome", "2xx")))] == 1
    assert samples[("hybiscus_webhooks_retries_scheduled_total", (("event", COMPLETED),))] == 1
    assert samples[("hybiscus_webhooks_attempt_seconds_count", (("event", COMPLETED),))] == 2
    assert receiver.url.split("//")[1] not in response.data.decode()  # No hosts in labels.


def test_the_default_registry_by_default_once() -> None:
    settings.configure()
    found = metrics.get()
    assert found is not None and found is metrics.get()
    assert found is metrics.get(prometheus_client.REGISTRY)
    before = prometheus_client.REGISTRY.get_sample_value("hybiscus_webhooks_record_write_failures_total") or 0
    metrics.record_failed()
    assert prometheus_client.REGISTRY.get_sample_value("hybiscus_webhooks_record_write_failures_total") == before + 1
    # Registering our names twice on one registry would raise: settings reloads must reuse them.
    settings.reload()
    settings.configure()
    assert metrics.get() is found


def test_a_registry_named_by_import_path() -> None:
    settings.configure(METRICS_REGISTRY="tests.test_metrics.HOST_REGISTRY")
    metrics.exhausted(COMPLETED)
    assert HOST_REGISTRY.get_sample_value("hybiscus_webhooks_exhausted_total", {"event": COMPLETED}) == 1


@pytest.mark.parametrize(("value", "message"), [
    (42, "METRICS_REGISTRY must be a prometheus_client CollectorRegistry, got 42"),
    ("tests.no_such_module.REGISTRY", "METRICS_REGISTRY: could not import"),
])
def test_a_bad_registry_is_named(value: Any, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        settings.configure(METRICS_REGISTRY=value)


def test_without_prometheus_client_metrics_are_off_and_nothing_breaks() -> None:
    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "from hybiscus_webhooks import metrics, settings\n"
        "settings.configure()\n"
        "assert metrics.get() is None\n"
        "metrics.attempt('report.completed', 204, None, 0.1); metrics.exhausted('report.completed')\n"
        "metrics.record_failed()\n"
        "print('off')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60)
    assert result.stdout.strip() == "off", result.stderr


def test_importing_the_library_registers_and_imports_no_metrics() -> None:
    code = (
        "import sys, hybiscus_webhooks, hybiscus_webhooks.metrics, hybiscus_webhooks.tracking\n"
        "import hybiscus_webhooks.records, hybiscus_webhooks.cli\n"
        "assert 'prometheus_client' not in sys.modules, 'imported at import time'\n"
        "print('clean')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60)
    assert result.stdout.strip() == "clean", result.stderr


def test_each_new_setting_of_the_registry_takes_effect_at_once() -> None:
    # The instruments are remembered for the settings in force: new settings must not find the old ones.
    labels = {"event": COMPLETED, "outcome": "2xx"}
    settings.configure(METRICS_REGISTRY="tests.test_metrics.HOST_REGISTRY")
    before = HOST_REGISTRY.get_sample_value("hybiscus_webhooks_attempts_total", labels) or 0
    timed = HOST_REGISTRY.get_sample_value("hybiscus_webhooks_attempt_seconds_count", {"event": COMPLETED}) or 0
    metrics.attempt(COMPLETED, 204, None, 0.1)
    settings.configure(METRICS_REGISTRY=False)
    assert metrics.get() is None
    metrics.attempt(COMPLETED, 204, None, 0.1)
    settings.configure(METRICS_REGISTRY="tests.test_metrics.HOST_REGISTRY")
    metrics.attempt(COMPLETED, 204, None, 0.1)
    assert HOST_REGISTRY.get_sample_value("hybiscus_webhooks_attempts_total", labels) == before + 2
    assert HOST_REGISTRY.get_sample_value("hybiscus_webhooks_attempt_seconds_count", {"event": COMPLETED}) == timed + 2
