"""A delivery waiting for its retry carries no traceback; other actors' messages keep theirs."""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware

from hybiscus_webhooks import install
from hybiscus_webhooks.slim import DropRetryTraceback
from hybiscus_webhooks.testing import DramatiqClock, Receiver

from .conftest import Enqueued
from .test_delivery import run_failing_delivery


class Delayed(Middleware):
    """Records the options of each delayed message as it is stored, after every before_enqueue ran."""

    def __init__(self) -> None:
        self.options: list[dict[str, Any]] = []

    def after_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        if delay:
            self.options.append(dict(message.options))


def test_retries_wait_without_the_traceback(
    stub_broker: StubBroker, start_worker: Any, enqueued: Enqueued, clock: DramatiqClock, receiver: Receiver
) -> None:
    delayed = Delayed()
    stub_broker.add_middleware(delayed)
    receiver.default = 503
    run_failing_delivery(stub_broker, start_worker, enqueued, clock, receiver, attempts=9)
    assert [options["retries"] for options in delayed.options] == list(range(1, 9))
    assert not any("traceback" in options for options in delayed.options)
    assert len(stub_broker.dead_letters) == 1


def test_other_actors_keep_their_traceback(stub_broker: StubBroker, start_worker: Any, enqueued: Enqueued) -> None:
    delayed = Delayed()
    stub_broker.add_middleware(delayed)
    install(stub_broker)

    @dramatiq.actor(broker=stub_broker, max_retries=1, min_backoff=10, max_backoff=10)
    def flaky() -> None:
        raise ValueError("boom")

    flaky.send()
    start_worker(stub_broker)
    stub_broker.join(flaky.queue_name, fail_fast=False)
    assert "ValueError: boom" in delayed.options[0]["traceback"]


def test_install_adds_it_once() -> None:
    broker = StubBroker()
    install(broker)
    install(broker)
    assert sum(isinstance(middleware, DropRetryTraceback) for middleware in broker.middleware) == 1
    broker.close()
