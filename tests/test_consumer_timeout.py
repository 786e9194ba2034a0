"""RabbitMQ's consumer_timeout shorter than a retry's delay, on a private node set to 10 s.

A Dramatiq worker holds each scheduled retry unacked until its eta. Here the first retry's 30 s
stands for the 32 and 64 minute retries against the default 30-minute timeout, in real time.

- Held whole (``RETRY_HOLD_LIMIT = None``): the node closes the worker's delay-queue channel each
  time the hold passes the timeout and hands the retry back. It is held again with the same eta, so
  the schedule holds to within Dramatiq's consumer restart delay (3 s) and no webhook is sent twice;
  the cost is a closed channel, a CRITICAL log line and a redelivery of every retry held, each time.
- Held in parts (``RETRY_HOLD_LIMIT`` below the timeout): no channel is ever closed, and the retry
  arrives on time.
"""

from __future__ import annotations

import gc
import itertools
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from hybiscus_webhooks import install, report_completed, settings
from hybiscus_webhooks.broker_checks import read_consumer_timeout
from hybiscus_webhooks.cli import main
from hybiscus_webhooks.testing import Receiver

from .conftest import REPORT_URL, unique
from .e2e.rabbitmq_node import PrivateRabbitmqNode, start_private_node
from .e2e.recorder import Recorder

CONSUMER_TIMEOUT = 10_000
#: How often the node checks its consumers' timeouts (RabbitMQ's default is every 60 s).
CHANNEL_TICK_INTERVAL = 1_000
WEBHOOKS = 5

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRabbitmqNode]:
    started = start_private_node(tmp_path_factory.mktemp("rabbitmq"), consumer_timeout=CONSUMER_TIMEOUT,
                                 channel_tick_interval=CHANNEL_TICK_INTERVAL)
    try:
        yield started
    finally:
        started.stop()  # Kills it if it will not stop.


@pytest.fixture
def broker(node: PrivateRabbitmqNode) -> Iterator[Any]:
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    broker = RabbitmqBroker(url=node.url)
    broker.add_middleware(Recorder())
    broker.emit_after("process_boot")
    yield broker
    broker.close()  # After the worker has stopped: the fixtures that use this one end first.


def run_retries(
    node: PrivateRabbitmqNode, broker: Any, start_worker: Any, hold_limit: float | None
) -> tuple[Recorder, list[Any]]:
    """One failed attempt per webhook, then its retry 30 s later in real time; returns once all is acked."""
    queue = unique("hw_timeout")
    settings.configure(
        REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, QUEUE_NAME=queue, RETRY_HOLD_LIMIT=hold_limit
    )
    install(broker)
    [recorder] = [middleware for middleware in broker.middleware if isinstance(middleware, Recorder)]
    with Receiver(statuses=[503] * WEBHOOKS) as receiver:
        for n in range(WEBHOOKS):
            report_completed("task-%d" % n, {"config": {"webhooks": [{"url": receiver.url + "/hook/%d" % n}]}},
                             broker=broker)
        # One thread more than webhooks: the first attempts to the receiver, not known yet, never wait for
        # the thread a worker keeps for destinations that have answered. A deferral would be one more hold
        # than this test counts: a change to that rule shows here first.
        start_worker(broker, worker_threads=WEBHOOKS + 1)
        receiver.wait_for(2 * WEBHOOKS, timeout=120)
        node.wait_until_empty(queue, queue + ".DQ")  # Nothing left that could arrive later.
        return recorder, list(receiver.requests)


def gaps_by_path(requests: list[Any]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    for request in requests:
        times.setdefault(request.path, []).append(request.at)
    return {path: [later - earlier for earlier, later in itertools.pairwise(at)] for path, at in times.items()}


def report(what: str, closed: int, recorder: Recorder, gaps: dict[str, list[float]]) -> None:
    print("\n%s: %d channel closures, %d holds (%d redelivered), retry gaps %.2f..%.2f s" % (
        what, closed, len(recorder.holds), sum(hold.redelivered for hold in recorder.holds),
        min(min(gap) for gap in gaps.values()), max(max(gap) for gap in gaps.values())))


def closures(caplog: pytest.LogCaptureFixture) -> int:
    return sum("PRECONDITION_FAILED" in record.getMessage() for record in caplog.records
               if record.name.startswith("dramatiq.worker"))


class _Flatten(logging.Filter):
    """Turns a record's arguments into its text, so that captured records keep no object alive."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = record.getMessage(), None
        return True


@contextmanager
def flat_log_records() -> Iterator[None]:
    flatten = _Flatten()
    handlers = list(logging.getLogger().handlers)  # pytest's capturing handlers of the phase under way.
    for handler in handlers:
        handler.addFilter(flatten)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(flatten)


# Dramatiq does not close the connection of a consumer whose channel the node closed (closing the
# channel fails first), so each closure leaves a pika connection and its sockets to the garbage
# collector. They are collected within this test, so that the warnings are this test's, not a later one's;
# for that, no captured log record may refer to them (pika logs the channel, dramatiq the error).
@pytest.mark.filterwarnings("ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning")
def test_held_whole_the_channel_is_closed_yet_the_schedule_holds_without_duplicates(
    node: PrivateRabbitmqNode, broker: Any, start_worker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with flat_log_records():
        recorder, requests = run_retries(node, broker, start_worker, hold_limit=None)
    gc.collect()

    assert closures(caplog) >= 1
    assert any(hold.redelivered for hold in recorder.holds)  # The node handed the held retries back.
    assert max(hold.length for hold in recorder.holds) > CONSUMER_TIMEOUT
    gaps = gaps_by_path(requests)
    assert len(requests) == 2 * WEBHOOKS and len(gaps) == WEBHOOKS  # No webhook sent twice.
    # On time, give or take Dramatiq's 3 s consumer restart after a closed channel.
    assert all(30.0 <= gap < 40.0 for [gap] in gaps.values()), gaps
    report("held whole", closures(caplog), recorder, gaps)


def test_held_in_parts_below_the_timeout_no_channel_is_closed_and_the_schedule_holds(
    node: PrivateRabbitmqNode, broker: Any, start_worker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    recorder, requests = run_retries(node, broker, start_worker, hold_limit=4.0)

    assert closures(caplog) == 0
    assert not any(hold.redelivered for hold in recorder.holds)
    # 30 s held as 7 x 4 s + 2 s (the last part is skipped if the others ran 2 s late in all).
    assert 7 * WEBHOOKS <= len(recorder.holds) <= 8 * WEBHOOKS
    assert max(hold.length for hold in recorder.holds) <= 4_000
    gaps = gaps_by_path(requests)
    assert len(requests) == 2 * WEBHOOKS and len(gaps) == WEBHOOKS
    assert all(30.0 <= gap < 32.0 for [gap] in gaps.values()), gaps
    report("held in parts", closures(caplog), recorder, gaps)


def test_the_check_command_reads_the_nodes_timeout_with_rabbitmqctl_and_warns(
    node: PrivateRabbitmqNode, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As an operator on the broker's host: the node's Erlang cookie in HOME, rabbitmqctl on PATH.
    monkeypatch.setenv("HOME", str(node.base))
    monkeypatch.setenv("PATH", os.path.dirname(node.ctl_path) + os.pathsep + os.environ.get("PATH", ""))
    assert read_consumer_timeout(node.name) == CONSUMER_TIMEOUT
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True)
    assert main(["check", "--rabbitmq-node", node.name]) == 1
    assert "warning: RabbitMQ's consumer_timeout is 0.17 min" in capsys.readouterr().err
