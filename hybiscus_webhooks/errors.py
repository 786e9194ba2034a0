from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class HybiscusWebhooksError(Exception):
    """Base class for every error this library raises."""


class ImproperlyConfigured(HybiscusWebhooksError, ValueError):
    """A setting or a constructor argument has a bad value."""


class BrokerNotConfigured(HybiscusWebhooksError):
    """No Dramatiq broker was given and none has been set with ``dramatiq.set_broker``."""


class InvalidWebhooks(HybiscusWebhooksError):
    """``config.webhooks`` of a Report definition did not validate."""

    def __init__(self, problems: Sequence[dict[str, Any]]) -> None:
        self.problems = list(problems)
        summary = "; ".join(
            "%s: %s" % (".".join(str(part) for part in problem["loc"]), problem["msg"])
            for problem in self.problems
        )
        super().__init__("Invalid config.webhooks: %s" % summary)


class DeliveryFailed(HybiscusWebhooksError):
    """A webhook attempt did not get a 2xx answer."""


class DestinationRefused(HybiscusWebhooksError):
    """A webhook URL points somewhere the settings do not allow; it is never retried."""


class UnsafeHeader(DestinationRefused):
    """A header value holds CR, LF or another control character, so the request is never sent nor retried."""


class SealBroken(HybiscusWebhooksError):
    """A delivery message's endpoint is sealed, and none of MESSAGE_KEYS opens it."""
