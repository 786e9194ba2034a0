"""Report webhooks of the Hybiscus PDF API for a Starlette report server and its Dramatiq workers."""

__version__ = "0.1.0"

from .delivery import install  # noqa: E402
from .errors import (  # noqa: E402
    BrokerNotConfigured,
    DeliveryFailed,
    DestinationRefused,
    HybiscusWebhooksError,
    ImproperlyConfigured,
    InvalidWebhooks,
)
from .hook import RenderHook, report_completed, report_failed  # noqa: E402
from .middleware import WebhooksMiddleware  # noqa: E402
from .schemas import Webhook  # noqa: E402

__all__ = [
    "BrokerNotConfigured",
    "DeliveryFailed",
    "DestinationRefused",
    "HybiscusWebhooksError",
    "ImproperlyConfigured",
    "InvalidWebhooks",
    "RenderHook",
    "Webhook",
    "WebhooksMiddleware",
    "__version__",
    "install",
    "report_completed",
    "report_failed",
]
