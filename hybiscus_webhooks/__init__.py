"""Report webhooks of the Hybiscus PDF API for a Starlette report server and its Dramatiq workers."""

__version__ = "0.1.0"

from .delivery import install
from .errors import (
    BrokerNotConfigured,
    DeliveryFailed,
    DestinationRefused,
    HybiscusWebhooksError,
    ImproperlyConfigured,
    InvalidWebhooks,
    UnsafeHeader,
)
from .hook import RenderHook, report_completed, report_failed
from .middleware import WebhooksMiddleware
from .schemas import Webhook
from .tracking import ExhaustedDelivery

__all__ = [
    "BrokerNotConfigured",
    "DeliveryFailed",
    "DestinationRefused",
    "ExhaustedDelivery",
    "HybiscusWebhooksError",
    "ImproperlyConfigured",
    "InvalidWebhooks",
    "RenderHook",
    "UnsafeHeader",
    "Webhook",
    "WebhooksMiddleware",
    "__version__",
    "install",
    "report_completed",
    "report_failed",
]
