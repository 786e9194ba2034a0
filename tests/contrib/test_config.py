"""The report server's configuration, and the settings module it gives hybiscus_webhooks."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from hybiscus_webhooks import ImproperlyConfigured, settings
from hybiscus_webhooks.sealing import new_key
from hybiscus_webhooks_contrib.report_server import ServerConfig, broker_from_url, store_for
from hybiscus_webhooks_contrib.report_server.pipeline import pipeline_from_config
from hybiscus_webhooks_contrib.report_server.store import MemoryTaskStore, RedisTaskStore


def test_defaults_suit_a_server_on_this_machine() -> None:
    config = ServerConfig.from_environment({})
    assert config.api_keys == ()
    assert config.report_url_template == "http://127.0.0.1:8000/api/v1/get-report?task_id={task_id}"
    assert (config.render_queue, config.webhook_queue) == ("report_server.render", "report_server.webhooks")
    assert config.task_ttl == 86400 and config.store_url is None


def test_every_variable_is_read() -> None:
    config = ServerConfig.from_environment({
        "REPORT_SERVER_API_KEYS": " a, b ,,", "REPORT_SERVER_BASE_URL": "https://reports.example.com/",
        "REPORT_SERVER_BROKER_URL": "amqp://u:p@mq", "REPORT_SERVER_REDIS_URL": "redis://cache/2",
        "REPORT_SERVER_NAMESPACE": "acme", "REPORT_SERVER_TASK_TTL": "600",
    })
    assert config.api_keys == ("a", "b")
    assert config.report_url_template == "https://reports.example.com/api/v1/get-report?task_id={task_id}"
    assert config.render_queue == "acme.render" and config.store_url == "redis://cache/2" and config.task_ttl == 600


def test_a_redis_broker_holds_the_tasks_too() -> None:
    assert ServerConfig(broker_url="redis://127.0.0.1:6379/3").store_url == "redis://127.0.0.1:6379/3"
    assert ServerConfig(broker_url="amqp://127.0.0.1").store_url is None


def test_secrets_stay_out_of_the_repr() -> None:
    text = repr(ServerConfig(api_keys=("secret-key",), broker_url="amqp://user:pw@mq", redis_url="redis://:pw@r"))
    assert "secret-key" not in text and "pw" not in text


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"REPORT_SERVER_TASK_TTL": "1h"}, "REPORT_SERVER_TASK_TTL must be a whole number of seconds, got '1h'"),
        ({"REPORT_SERVER_TASK_TTL": "0"}, "task_ttl must be at least 1 second"),
        ({"REPORT_SERVER_BASE_URL": "reports.example.com"}, "base_url must be an absolute http or https URL"),
        ({"REPORT_SERVER_BASE_URL": "http://x/?a=1"}, "base_url must be an absolute http or https URL"),
        ({"REPORT_SERVER_NAMESPACE": "a.b"}, "namespace must be letters"),
    ],
)
def test_bad_values_name_the_variable_or_field(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="REPORT_SERVER_") as caught:
        ServerConfig.from_environment(environ)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [("http://127.0.0.1", "must start with redis:// or amqp://"), ("127.0.0.1:6379", "must start with redis://")],
)
def test_broker_urls_other_than_redis_and_amqp_are_refused(url: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        broker_from_url(url)


def test_a_missing_broker_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dramatiq.brokers.rabbitmq", None)
    with pytest.raises(ImproperlyConfigured, match=r"needs the 'rabbitmq' extra .*hybiscus-webhooks\[rabbitmq\]"):
        broker_from_url("amqp://127.0.0.1")


def test_the_store_follows_the_config() -> None:
    assert isinstance(store_for(ServerConfig()), MemoryTaskStore)
    store = store_for(ServerConfig(redis_url="redis://127.0.0.1:6379/0"))  # Connects only when used.
    assert isinstance(store, RedisTaskStore)
    store.close()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (ServerConfig(), "REPORT_SERVER_BROKER_URL is not set"),
        (ServerConfig(broker_url="amqp://127.0.0.1"), "must share tasks through Redis: set REPORT_SERVER_REDIS_URL"),
    ],
)
def test_separate_processes_need_a_broker_and_a_shared_store(config: ServerConfig, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        pipeline_from_config(config)


@pytest.fixture
def settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.setenv(settings.ENVIRONMENT_VARIABLE, "hybiscus_webhooks_contrib.report_server.webhook_settings")
    settings.reload()
    yield monkeypatch
    monkeypatch.undo()
    settings.reload()


def test_the_webhook_settings_point_at_the_server_itself(settings_from_environment: pytest.MonkeyPatch) -> None:
    settings_from_environment.setenv("REPORT_SERVER_BASE_URL", "https://reports.example.com")
    settings_from_environment.setenv("REPORT_SERVER_NAMESPACE", "acme")
    assert settings.get().REPORT_URL == "https://reports.example.com/api/v1/get-report?task_id={task_id}"
    assert settings.get().QUEUE_NAME == "acme.webhooks"


def test_the_webhook_settings_seal_messages_with_the_servers_keys(
    settings_from_environment: pytest.MonkeyPatch,
) -> None:
    assert settings.get().MESSAGE_KEYS == ()
    first, second = new_key(), new_key()
    settings_from_environment.setenv("REPORT_SERVER_MESSAGE_KEYS", " %s,%s ," % (first, second))
    settings.reload()
    assert len(settings.get().MESSAGE_KEYS) == 2
    assert first not in repr(ServerConfig.from_environment())


def test_the_webhook_settings_module_reads_nothing_on_import(monkeypatch: pytest.MonkeyPatch) -> None:
    module = importlib.import_module("hybiscus_webhooks_contrib.report_server.webhook_settings")
    monkeypatch.setenv("REPORT_SERVER_BASE_URL", "https://later.example.com")
    assert module.REPORT_URL.startswith("https://later.example.com/")
    with pytest.raises(AttributeError):
        module.NOT_A_SETTING  # noqa: B018


def test_a_server_without_report_url_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from dramatiq.brokers.stub import StubBroker

    from hybiscus_webhooks_contrib.report_server import build_pipeline

    settings.configure()
    try:
        with pytest.raises(ImproperlyConfigured, match=r"no REPORT_URL.*HYBISCUS_WEBHOOKS_SETTINGS="):
            build_pipeline(StubBroker(), MemoryTaskStore(ttl=1), render_queue="q")
    finally:
        settings.reload()


def test_importing_the_contrib_packages_has_no_side_effects() -> None:
    # In a fresh interpreter: none of our variables read, no broker made, no actor declared.
    code = textwrap.dedent("""
        import os, dramatiq.broker
        OURS = ("REPORT_SERVER_", "HYBISCUS_WEBHOOKS_")
        class Watched(dict):
            def __getitem__(self, key):
                if key.startswith(OURS): raise SystemExit("read %s on import" % key)
                return super().__getitem__(key)
            def get(self, key, default=None):
                if key.startswith(OURS): raise SystemExit("read %s on import" % key)
                return super().get(key, default)
        os.environ = Watched(os.environ)
        import hybiscus_webhooks_contrib.report_server, hybiscus_webhooks_contrib.report_server.app
        import hybiscus_webhooks_contrib.report_server.asgi, hybiscus_webhooks_contrib.report_server.fastapi_app
        import hybiscus_webhooks_contrib.report_server.webhook_settings
        import hybiscus_webhooks_contrib.receiver, hybiscus_webhooks_contrib.demo
        assert dramatiq.broker.global_broker is None
    """)
    subprocess.run([sys.executable, "-c", code], check=True)
