"""Reading the delivery actor's dead letters, where a failed delivery's message (with its URL and auth
header, which nothing else keeps) lives for the broker's dead-message TTL, 7 days by default.

Redis keeps them in ``<namespace>:<queue>.XQ`` (a sorted set of ids) and ``<namespace>:<queue>.XQ.msgs``
(the messages); RabbitMQ in the queue ``<queue>.XQ``; the StubBroker in ``dead_letters_by_queue``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dramatiq
from dramatiq.common import xq_name
from dramatiq.errors import DecodeError

from .brokers import kind
from .errors import ImproperlyConfigured

logger = logging.getLogger(__name__)

#: Most dead letters read from RabbitMQ in one go: each is held unacked until the reading ends.
MAX_RABBITMQ_MESSAGES = 100_000


@dataclass
class DeadLetter:
    message: dramatiq.Message[Any] = field(repr=False)
    #: Deletes it from the dead-letter queue.
    remove: Callable[[], None] = field(repr=False)


Match = Callable[["dramatiq.Message[Any]"], bool]


@contextmanager
def dead_letters(
    broker: dramatiq.Broker, queue_name: str, actor_name: str, match: Match = lambda message: True,
) -> Iterator[list[DeadLetter]]:
    """The dead letters of ``actor_name`` on ``queue_name`` that ``match``; ``remove()`` them inside the block."""
    def wanted(message: dramatiq.Message[Any]) -> bool:
        return message.actor_name == actor_name and match(message)

    found_kind = kind(broker)
    if found_kind == "stub":
        yield _stub(broker, queue_name, wanted)
    elif found_kind == "redis":
        yield _redis(broker, queue_name, wanted)
    elif found_kind == "rabbitmq":
        with _rabbitmq(broker, queue_name, wanted) as found:
            yield found
    else:
        raise ImproperlyConfigured(
            "Dead letters can be read from Redis, RabbitMQ and Stub brokers, not %s: redeliver from the "
            "Report definition instead (--report)." % type(broker).__name__
        )


def _decode(data: bytes, wanted: Match) -> dramatiq.Message[Any] | None:
    try:
        message = dramatiq.Message.decode(data)
    except DecodeError:
        # Never log the exception: it carries the raw message, auth header included.
        logger.warning("Skipped a dead letter that could not be decoded.")
        return None
    return message if wanted(message) else None


def _stub(broker: Any, queue_name: str, wanted: Match) -> list[DeadLetter]:
    letters = broker.dead_letters_by_queue[queue_name]
    return [
        DeadLetter(getattr(message, "_message", message), functools.partial(letters.remove, message))
        for message in list(letters) if wanted(message)
    ]


def _redis(broker: Any, queue_name: str, wanted: Match) -> list[DeadLetter]:
    index = "%s:%s" % (broker.namespace, xq_name(queue_name))
    messages = index + ".msgs"
    found = []
    # Scanned, not read whole: a week of dead letters can be large.
    for message_id, data in broker.client.hscan_iter(messages, count=500):
        message = _decode(data, wanted)
        if message is not None:
            def remove(message_id: bytes = message_id) -> None:
                pipe = broker.client.pipeline(transaction=True)
                pipe.zrem(index, message_id)
                pipe.hdel(messages, message_id)
                pipe.execute()

            found.append(DeadLetter(message, remove))
    return found


@contextmanager
def _rabbitmq(broker: Any, queue_name: str, wanted: Match) -> Iterator[list[DeadLetter]]:
    import pika.exceptions

    # A channel of our own: every message got from it stays unacked, so the next get returns the next
    # one, until the channel closes and RabbitMQ puts back all that were not removed (acked).
    channel = broker.connection.channel()
    found = []
    try:
        for _ in range(MAX_RABBITMQ_MESSAGES):
            try:
                method, _properties, body = channel.basic_get(queue=xq_name(queue_name), auto_ack=False)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code == 404:  # No dead-letter queue yet: nothing ever died.
                    break
                raise
            if method is None:
                break
            message = _decode(body, wanted)
            if message is not None:
                found.append(DeadLetter(message, functools.partial(channel.basic_ack, method.delivery_tag)))
        yield found
    finally:
        if channel.is_open:
            channel.close()
