"""Settings of hybiscus_webhooks for the reference report server.

Name it in the environment of the web process and of the workers::

    HYBISCUS_WEBHOOKS_SETTINGS=hybiscus_webhooks_contrib.report_server.webhook_settings

Webhooks point at this server's own get-report, and deliveries go on a queue in its namespace;
both come from REPORT_SERVER_BASE_URL and REPORT_SERVER_NAMESPACE, and MESSAGE_KEYS from
REPORT_SERVER_MESSAGE_KEYS (comma separated), read when hybiscus_webhooks first asks for a
setting, not when this module is imported.
"""

from __future__ import annotations

from typing import Any

from .config import ServerConfig

_NAMES = ("ALLOW_PRIVATE_DESTINATIONS", "MESSAGE_KEYS", "QUEUE_NAME", "REPORT_URL")


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    config = ServerConfig.from_environment()
    return {
        "ALLOW_PRIVATE_DESTINATIONS": config.allow_private_destinations,
        "MESSAGE_KEYS": list(config.message_keys),
        "QUEUE_NAME": config.webhook_queue,
        "REPORT_URL": config.report_url_template,
    }[name]


def __dir__() -> list[str]:
    # hybiscus_webhooks.settings lists a module's UPPERCASE names with dir().
    return sorted(_NAMES)
