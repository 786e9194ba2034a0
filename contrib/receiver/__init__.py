"""A webhook receiver for trying webhooks out: it shows each one it gets and can be told to fail.

Run it with ``python -m hybiscus_webhooks_contrib.receiver --help``.
"""

from .receiver import Arrival, WebhookReceiver

__all__ = ["Arrival", "WebhookReceiver"]
