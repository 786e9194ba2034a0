"""The report server's own configuration, from ``REPORT_SERVER_*`` environment variables when asked."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from hybiscus_webhooks import ImproperlyConfigured

#: Path of the endpoint that serves a built report.
GET_REPORT_PATH = "/api/v1/get-report"

_NAMESPACE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_REDIS_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class ServerConfig:
    """What the web process and the workers of one report server share."""

    #: Keys accepted in ``X-API-KEY`` or ``?api_key=``.
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    #: Where clients reach this server; the webhooks' report URLs start with it.
    base_url: str = "http://127.0.0.1:8000"
    #: ``redis://...`` or ``amqp://...``; None for a broker made in code.
    broker_url: str | None = field(default=None, repr=False)  # URLs may hold passwords
    #: Redis holding task state and PDFs; defaults to the broker when that is Redis.
    redis_url: str | None = field(default=None, repr=False)
    #: Prefix of this server's queues and Redis keys, so that several can share a broker.
    namespace: str = "report_server"
    #: Seconds a task and its PDF are kept after their last change.
    task_ttl: int = 24 * 3600
    #: Let webhooks reach loopback and private addresses: for the demo and tests on one machine.
    allow_private_destinations: bool = False
    #: MESSAGE_KEYS of hybiscus_webhooks: seal the webhooks' URLs and auth headers in the broker.
    message_keys: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ImproperlyConfigured("base_url must be an absolute http or https URL, got %r." % self.base_url)
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if not _NAMESPACE.fullmatch(self.namespace):
            raise ImproperlyConfigured(
                "namespace must be letters, digits, '_' and '-', not starting with a digit, got %r." % self.namespace
            )
        if self.task_ttl < 1:
            raise ImproperlyConfigured("task_ttl must be at least 1 second, got %r." % self.task_ttl)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ServerConfig:
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        keys = environ.get("REPORT_SERVER_API_KEYS", "")
        values["api_keys"] = tuple(key.strip() for key in keys.split(",") if key.strip())
        message_keys = environ.get("REPORT_SERVER_MESSAGE_KEYS", "")
        values["message_keys"] = tuple(key.strip() for key in message_keys.split(",") if key.strip())
        for name, variable in (
            ("base_url", "REPORT_SERVER_BASE_URL"),
            ("broker_url", "REPORT_SERVER_BROKER_URL"),
            ("redis_url", "REPORT_SERVER_REDIS_URL"),
            ("namespace", "REPORT_SERVER_NAMESPACE"),
        ):
            if environ.get(variable):
                values[name] = environ[variable]
        if environ.get("REPORT_SERVER_TASK_TTL"):
            try:
                values["task_ttl"] = int(environ["REPORT_SERVER_TASK_TTL"])
            except ValueError:
                raise ImproperlyConfigured(
                    "REPORT_SERVER_TASK_TTL must be a whole number of seconds, got %r."
                    % environ["REPORT_SERVER_TASK_TTL"]
                ) from None
        allow = environ.get("REPORT_SERVER_ALLOW_PRIVATE_DESTINATIONS", "").strip().lower()
        if allow not in ("", "0", "1", "false", "true"):
            raise ImproperlyConfigured(
                "REPORT_SERVER_ALLOW_PRIVATE_DESTINATIONS must be true or false, got %r." % allow
            )
        values["allow_private_destinations"] = allow in ("1", "true")
        try:
            return cls(**values)  # type: ignore[arg-type]
        except ImproperlyConfigured as exc:
            raise ImproperlyConfigured("In the REPORT_SERVER_* environment variables: %s" % exc) from None

    @property
    def render_queue(self) -> str:
        return "%s.render" % self.namespace

    @property
    def webhook_queue(self) -> str:
        return "%s.webhooks" % self.namespace

    @property
    def report_url_template(self) -> str:
        """The ``REPORT_URL`` setting of hybiscus_webhooks for this server."""
        return "%s%s?task_id={task_id}" % (self.base_url, GET_REPORT_PATH)

    @property
    def store_url(self) -> str | None:
        """The Redis that holds tasks, or None to keep them in this process's memory."""
        if self.redis_url:
            return self.redis_url
        if self.broker_url and urlsplit(self.broker_url).scheme in _REDIS_SCHEMES:
            return self.broker_url
        return None
