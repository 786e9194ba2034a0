"""Settings of hybiscus_webhooks for the reference report server.

Name it in the environment of the web process and of the workers::

    HYBISCUS_WEBHOOKS_SETTINGS=hybiscus_webhooks_contrib.report_server.webhook_settings

Webhooks point at this server's own get-report, and deliveries go on a queue in its namespace;
both come from REPORT_SERVER_BASE_URL and REPORT_SERVER_NAMESPACE, read when hybiscus_webhooks
first asks for a setting, not when this module is imported.
"""

from __future__ import annotations

from typing import Any

from .config import ServerConfig

_NAMES = ("ALLOW_PRIVATE_DESTINATIONS", "QUEUE_NAME", "REPORT_URL")


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    config = ServerConfig.from_environment()
    if name == "ALLOW_PRIVATE_DESTINATIONS":
        return config.allow_private_destinations
    return config.webhook_queue if name == "QUEUE_NAME" else config.report_url_template


def __dir__() -> list[str]:
    # hybiscus_webhooks.settings lists a module's UPPERCASE names with dir().
    return sorted(_NAMES)
