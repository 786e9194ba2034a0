"""``hybiscus-webhooks demo``: a report server, a worker and two receivers on loopback, with sample reports."""

from .run import run

__all__ = ["run"]
