"""Retries held in parts no longer than RETRY_HOLD_LIMIT: same schedule, no extra attempt."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from dramatiq.brokers.stub import StubBroker

from hybiscus_webhooks import ImproperlyConfigured, Webhook, settings
from hybiscus_webhooks.delivery import COMPLETED, send
from hybiscus_webhooks.holds import AUTO_RABBITMQ_LIMIT_MILLIS, DUE_OPTION, first_hold, limit_millis, next_hold
from hybiscus_webhooks.testing import DramatiqClock, Receiver

from .conftest import REPORT_URL, Enqueued

QUEUE = "hybiscus_webhooks"


def test_a_delay_within_the_limit_is_held_whole() -> None:
    options = {DUE_OPTION: 1}  # Left over from an earlier retry: dropped.
    assert first_hold(options, 60_000, 600_000, now=0) == 60_000
    assert options == {}
    assert first_hold(options, 60_000, None, now=0) == 60_000


def test_a_longer_delay_is_held_up_to_the_limit_and_remembers_when_it_is_due() -> None:
    options: dict[str, Any] = {}
    assert first_hold(options, 3_840_000, 900_000, now=1_000) == 900_000
    assert options == {DUE_OPTION: 3_841_000}
    assert next_hold(options, 900_000, now=901_000) == 900_000
    assert next_hold(options, 900_000, now=3_001_000) == 840_000
    assert next_hold(options, 900_000, now=3_841_000) is None  # Due: deliver now.
    assert next_hold(options, None, now=3_001_000) == 840_000  # The limit was lifted meanwhile.
    assert next_hold({}, 900_000, now=0) is None


def test_auto_limits_holds_on_rabbitmq_only() -> None:
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    assert settings.get().RETRY_HOLD_LIMIT == "auto"
    assert limit_millis(RabbitmqBroker(url="amqp://127.0.0.1:1")) == AUTO_RABBITMQ_LIMIT_MILLIS == 15 * 60_000
    assert limit_millis(StubBroker()) is None
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, RETRY_HOLD_LIMIT=90)
    assert limit_millis(StubBroker()) == 90_000
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, RETRY_HOLD_LIMIT=None)
    assert limit_millis(RabbitmqBroker(url="amqp://127.0.0.1:1")) is None


@pytest.mark.parametrize("value", ["15m", 0, -1, True, [900]])
def test_a_bad_hold_limit_is_an_error_naming_the_setting(value: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match="RETRY_HOLD_LIMIT"):
        settings.configure(RETRY_HOLD_LIMIT=value)


def test_the_full_schedule_held_in_ten_minute_parts_is_unchanged(
    stub_broker: StubBroker, start_worker: Any, enqueued: Enqueued, clock: DramatiqClock, receiver: Receiver
) -> None:
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, RETRY_HOLD_LIMIT=600)
    receiver.default = 503
    send(COMPLETED, "task-h", Webhook(receiver.url + "/hook"), broker=stub_broker)
    start_worker(stub_broker)
    receiver.wait_for(1)
    # 30 s, 1, 2, 4 and 8 min in one hold each; 16 min in 10 + 6; 32 in 10 + 10 + 10 + 2; 64 in 6 x 10 + 4.
    holds = [0.5, 1, 2, 4, 8, 10, 6, 10, 10, 10, 2, 10, 10, 10, 10, 10, 10, 4]
    for count in range(1, len(holds) + 1):
        clock.now = enqueued.wait_for_eta(count) / 1000  # Each part as soon as it is scheduled.
    receiver.wait_for(9)
    stub_broker.join(QUEUE, fail_fast=False)

    etas = [receiver.requests[0].at, *enqueued.etas]
    assert [(later - earlier) / 60_000 for earlier, later in itertools.pairwise(etas)] == holds
    times = [request.at for request in receiver.requests]
    assert [later - earlier for earlier, later in itertools.pairwise(times)] == [30_000 * 2**n for n in range(8)]
    # Nine attempts, then the dead letter, which counts 8 retries: the parts were no attempts.
    [dead] = stub_broker.dead_letters
    assert dead.options["retries"] == 8
    assert len(receiver.requests) == 9
