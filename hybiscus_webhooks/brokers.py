"""Reaching the host's broker from the command line, and telling Dramatiq's broker classes apart."""

from __future__ import annotations

import importlib
import os
import sys

import dramatiq
import dramatiq.broker

from .errors import ImproperlyConfigured

_CLASSES = {
    "redis": ("dramatiq.brokers.redis", "RedisBroker"),
    "rabbitmq": ("dramatiq.brokers.rabbitmq", "RabbitmqBroker"),
    "stub": ("dramatiq.brokers.stub", "StubBroker"),
}


def kind(broker: object) -> str | None:
    """'redis', 'rabbitmq' or 'stub' for Dramatiq's brokers and their subclasses, else None."""
    for name, (module_name, class_name) in _CLASSES.items():
        # Imported only if already loaded: a broker of a class nobody imported cannot exist.
        module = sys.modules.get(module_name)
        if module is not None and isinstance(broker, getattr(module, class_name)):
            return name
    return None


def load_broker(spec: str, *, source: str = "--broker-module") -> dramatiq.Broker:
    """Import the host's broker module as the ``dramatiq`` command would: ``module`` or ``module:attribute``.

    Without an attribute, the broker is the one the module set with ``dramatiq.set_broker``. The
    current directory is importable, as it is for the ``dramatiq`` command.
    """
    module_name, _, attribute = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImproperlyConfigured("%s: could not import %r (%s)." % (source, module_name, exc)) from exc
    if attribute:
        broker = getattr(module, attribute, None)
        if not isinstance(broker, dramatiq.Broker):
            raise ImproperlyConfigured("%s: %s.%s is not a Dramatiq broker." % (source, module_name, attribute))
        return broker
    # Not dramatiq.get_broker(): it would make up a RabbitMQ broker nobody asked for.
    if dramatiq.broker.global_broker is None:
        raise ImproperlyConfigured(
            "%s: importing %r set no broker: call dramatiq.set_broker(...) in it, or name the broker as "
            "'module:attribute'." % (source, module_name)
        )
    return dramatiq.broker.global_broker
