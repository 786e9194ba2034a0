"""The render side: the ``render_report`` actor and hybiscus_webhooks mounted on the same broker.

This is the mount README describes, on a broker the host builds: RenderHook sends the webhooks
after the render actor, ``install`` declares the delivery actor, both on the broker passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware

from hybiscus_webhooks import ImproperlyConfigured, RenderHook, install, settings

from .config import ServerConfig
from .render import UnrenderableReport, render_pdf
from .store import FAILED, RUNNING, SUCCESS, MemoryTaskStore, RedisTaskStore, Task, TaskStore

logger = logging.getLogger(__name__)

#: Name of the render actor; RenderHook watches it.
RENDER_ACTOR = "render_report"


@dataclass(frozen=True)
class Pipeline:
    broker: dramatiq.Broker
    store: TaskStore
    render: dramatiq.Actor[Any, None]

    def close(self) -> None:
        self.broker.close()
        self.store.close()


def report_of(store: TaskStore) -> Callable[[MessageProxy], tuple[str, dict[str, Any]]]:
    """RenderHook's ``extract``: the task_id is the message's argument, the report is in the store."""

    def extract(message: MessageProxy) -> tuple[str, dict[str, Any]]:
        task_id = message.args[0]
        report = store.get_report(task_id)
        if report is None:
            raise LookupError("The report of task %s has expired." % task_id)
        return task_id, report

    return extract


class MarkFailedTasks(Middleware):
    """Marks a task FAILED once its render has failed for good, whatever the reason (a crash, a time limit)."""

    def __init__(self, store: TaskStore, *, actor_name: str = RENDER_ACTOR) -> None:
        self.store = store
        self.actor_name = actor_name

    def after_nack(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        if message.actor_name != self.actor_name:
            return
        task_id = message.args[0]
        task = self.store.get(task_id)
        if task is not None and task.status != FAILED:
            self.store.put(Task(task_id, FAILED, "The report could not be rendered."))


def declare_render_actor(broker: dramatiq.Broker, store: TaskStore, *, queue_name: str) -> dramatiq.Actor[Any, None]:
    # The message carries the task_id only: see store.py for why the report is not in it.
    def render_report(task_id: str) -> None:
        report = store.get_report(task_id)
        store.put(Task(task_id, RUNNING))
        try:
            if report is None:
                raise UnrenderableReport("The report expired before it could be rendered.")
            pdf = render_pdf(report)
        except UnrenderableReport as exc:
            store.put(Task(task_id, FAILED, str(exc)))
            raise
        store.put(Task(task_id, SUCCESS), pdf=pdf)
        logger.info("Rendered task %s: %d bytes of PDF.", task_id, len(pdf))

    declare = dramatiq.actor(
        actor_name=RENDER_ACTOR, queue_name=queue_name, broker=broker,
        # A report that cannot be drawn fails at once; anything else may be passing (Redis away).
        throws=(UnrenderableReport,), max_retries=3, min_backoff=1000, max_backoff=10_000,
    )
    return declare(render_report)


def build_pipeline(broker: dramatiq.Broker, store: TaskStore, *, render_queue: str) -> Pipeline:
    if settings.get().REPORT_URL is None:
        raise ImproperlyConfigured(
            "hybiscus_webhooks has no REPORT_URL, so no webhook could be sent: set %s="
            "hybiscus_webhooks_contrib.report_server.webhook_settings (or a settings module of your own)."
            % settings.ENVIRONMENT_VARIABLE
        )
    broker.add_middleware(RenderHook(actor_name=RENDER_ACTOR, extract=report_of(store)))
    # Added after RenderHook so that it runs first after a nack: the task reads FAILED
    # before report.failed is on its way.
    broker.add_middleware(MarkFailedTasks(store))
    install(broker)
    return Pipeline(broker, store, declare_render_actor(broker, store, queue_name=render_queue))


def broker_from_url(url: str) -> dramatiq.Broker:
    scheme = urlsplit(url).scheme
    try:
        if scheme in ("redis", "rediss", "unix"):
            from dramatiq.brokers.redis import RedisBroker

            return RedisBroker(url=url)  # type: ignore[no-untyped-call]
        if scheme in ("amqp", "amqps"):
            from dramatiq.brokers.rabbitmq import RabbitmqBroker

            return RabbitmqBroker(url=url)
    except ModuleNotFoundError as exc:
        extra = "redis" if scheme.startswith(("redis", "unix")) else "rabbitmq"
        raise ImproperlyConfigured(
            "A %s:// broker needs the %r extra (%s is missing): pip install 'hybiscus-webhooks[%s]'."
            % (scheme, extra, exc.name, extra)
        ) from exc
    raise ImproperlyConfigured("The broker URL must start with redis:// or amqp://, got %s://..." % scheme)


def store_for(config: ServerConfig) -> TaskStore:
    if config.store_url is None:
        return MemoryTaskStore(ttl=config.task_ttl)
    try:
        return RedisTaskStore.from_url(config.store_url, namespace=config.namespace, ttl=config.task_ttl)
    except ModuleNotFoundError as exc:
        raise ImproperlyConfigured(
            "A Redis task store needs the 'redis' extra: pip install 'hybiscus-webhooks[redis]'."
        ) from exc


def pipeline_from_config(config: ServerConfig) -> Pipeline:
    """The pipeline of a server whose web process and workers are separate processes."""
    if config.broker_url is None:
        raise ImproperlyConfigured("REPORT_SERVER_BROKER_URL is not set: give it a redis:// or amqp:// URL.")
    if config.store_url is None:
        raise ImproperlyConfigured(
            "The web process and the workers must share tasks through Redis: set REPORT_SERVER_REDIS_URL "
            "(or use a redis:// REPORT_SERVER_BROKER_URL)."
        )
    return build_pipeline(broker_from_url(config.broker_url), store_for(config), render_queue=config.render_queue)
