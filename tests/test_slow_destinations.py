"""Slow destinations share a few threads; deliveries beyond them wait on the queue without an attempt."""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

import dramatiq
import pytest
from dramatiq.broker import MessageProxy
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware
from prometheus_client import CollectorRegistry

from hybiscus_webhooks import ImproperlyConfigured, Webhook, records, settings, slow_destinations
from hybiscus_webhooks.delivery import COMPLETED, install, send
from hybiscus_webhooks.records import MemoryRecords
from hybiscus_webhooks.slow_destinations import (
    MARK_SECONDS,
    MIN_DEFER_SECONDS,
    Policy,
    SlowDestinations,
    current,
    describe,
    destination_of,
)
from hybiscus_webhooks.testing import DramatiqClock, Receiver

from .conftest import REPORT_URL, Enqueued
from .hostile import Connection, Listener, hang

QUEUE = "hybiscus_webhooks"
SLOW = ("https", "slow.example", 443)
OTHER_SLOW = ("https", "late.example", 8443)
FAST = ("http", "fast.example", 80)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tracker(slots: int | None = 2, slow_seconds: float = 5.0) -> tuple[SlowDestinations, Clock]:
    clock = Clock()
    return SlowDestinations(Policy(slow_seconds, slots), clock=clock), clock


def test_a_destination_is_scheme_host_and_port_with_the_default_port_filled_in() -> None:
    assert destination_of("https://Hooks.Example.com/a?token=secret") == ("https", "hooks.example.com", 443)
    assert destination_of("http://hooks.example.com:8080/a") == ("http", "hooks.example.com", 8080)
    assert destination_of("http://[::1]:9/") == ("http", "::1", 9)
    assert describe(("http", "::1", 9)) == "http://[::1]:9"
    assert destination_of("ftp://hooks.example.com/") is None
    assert destination_of("http:///no-host") is None
    assert destination_of("http://hooks.example.com:99999/") is None


def test_slow_means_at_least_the_threshold_or_a_timeout() -> None:
    policy = Policy(5.0, 2)
    assert not policy.is_slow(4.99, None)
    assert policy.is_slow(5.0, None)
    assert policy.is_slow(0.3, "ReadTimeoutError")
    assert policy.is_slow(0.3, "ConnectTimeoutError")
    assert not policy.is_slow(0.01, "NewConnectionError")  # Refused at once: fails fast, holds no thread.


def test_destinations_not_marked_slow_are_never_limited() -> None:
    slow, _ = tracker(slots=1)
    for _ in range(50):
        assert slow.enter(FAST) is None
    assert not slow.leave(FAST, elapsed=4.0, error=None)
    assert not slow.is_marked(FAST)


def test_a_slow_attempt_marks_its_destination_until_mark_seconds_after_it() -> None:
    slow, clock = tracker()
    assert slow.enter(SLOW) is None
    clock.now += 15
    assert slow.leave(SLOW, elapsed=15.0, error="ReadTimeoutError") is True
    assert slow.is_marked(SLOW) and not slow.is_marked(FAST)
    assert slow.enter(SLOW) is None
    # Marked already: a second slow attempt renews the mark without saying so again.
    clock.now += 10
    assert slow.leave(SLOW, elapsed=10.0, error=None) is False
    clock.now += MARK_SECONDS - 0.001
    assert slow.is_marked(SLOW)
    clock.now += 0.001
    assert not slow.is_marked(SLOW)
    assert slow.enter(SLOW) is None and slow.enter(SLOW) is None and slow.enter(SLOW) is None


def test_a_destination_with_no_attempt_ending_for_the_threshold_is_marked_before_its_first_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="hybiscus_webhooks.slow_destinations")
    slow, clock = tracker(slots=1)
    assert slow.enter(SLOW) is None
    clock.now += 3
    assert slow.enter(SLOW) is None
    clock.now += 1.9
    assert slow.enter(SLOW) is None  # Not yet: the first has run 4.9 s.
    clock.now += 0.1
    # 5 s without an answer: marked now, and the three in flight already take more than the one slot.
    assert slow.enter(SLOW) == MIN_DEFER_SECONDS
    assert slow.is_marked(SLOW)
    assert caplog.messages == [
        "Destination https://slow.example:443 is slow (no answer for 5.0 s): for the next 60 s this worker "
        "process runs at most 1 attempts at once to the slow destinations; their other deliveries wait on the "
        "queue for a free slot."
    ]


def test_attempts_that_keep_ending_never_mark_a_busy_destination() -> None:
    slow, clock = tracker(slots=1)
    assert slow.enter(FAST) is None
    for _ in range(100):
        # Always one in flight, but each ends within a second: the destination answers.
        assert slow.enter(FAST) is None
        clock.now += 0.9
        assert not slow.leave(FAST, elapsed=0.9, error=None)
    assert not slow.is_marked(FAST)


def mark(slow: SlowDestinations, destination: tuple[str, str, int], seconds: float = 4.0) -> None:
    assert slow.enter(destination) is None
    slow.leave(destination, elapsed=seconds, error="ReadTimeoutError")


def test_slow_destinations_share_the_slots_and_the_rest_is_deferred_one_slow_attempt_apart() -> None:
    slow, clock = tracker(slots=2)
    mark(slow, SLOW)
    mark(slow, OTHER_SLOW)
    assert slow.enter(SLOW) is None
    assert slow.enter(OTHER_SLOW) is None
    # Both slots are taken, by two destinations: the third slow attempt waits, the fast one does not.
    waits = [slow.enter(SLOW), slow.enter(OTHER_SLOW), slow.enter(SLOW)]
    assert waits == [MIN_DEFER_SECONDS, MIN_DEFER_SECONDS + 2.0, MIN_DEFER_SECONDS + 4.0]
    assert slow.enter(FAST) is None
    # A slot frees; a delivery that has not waited yet joins the line rather than jump it.
    clock.now += 1
    slow.leave(SLOW, elapsed=4.0, error="ReadTimeoutError")
    assert slow.enter(SLOW) == pytest.approx(MIN_DEFER_SECONDS + 5.0)
    # The first in line comes back and takes the free slot.
    assert slow.enter(SLOW, waited=True) is None
    # One back for its turn while every slot is taken waits one slot's time, not the whole line again.
    assert slow.enter(OTHER_SLOW, waited=True) == 2.0


def test_a_destination_stays_marked_while_its_deliveries_wait_for_their_turns() -> None:
    slow, clock = tracker(slots=1)
    mark(slow, SLOW)  # 4 s timeouts: turns 4 s apart.
    assert slow.enter(SLOW) is None
    turns = [slow.enter(SLOW) for _ in range(30)]
    assert turns[-1] == pytest.approx(MIN_DEFER_SECONDS + 29 * 4.0)  # Two minutes away, past the mark.
    clock.now += 4
    slow.leave(SLOW, elapsed=4.0, error="ReadTimeoutError")
    # Long after the last slow attempt's mark would have run out, before the last turn: still marked,
    # so a new delivery waits in line rather than take a thread the waiting ones would also take.
    clock.now += MARK_SECONDS + 30
    assert slow.is_marked(SLOW)
    assert slow.enter(SLOW) is not None
    clock.now += turns[-1] + MARK_SECONDS
    assert not slow.is_marked(SLOW)


def test_an_attempt_that_is_not_slow_ends_the_mark(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hybiscus_webhooks.slow_destinations")
    slow, clock = tracker(slots=1)
    mark(slow, SLOW)
    assert slow.enter(SLOW) is None
    assert slow.enter(SLOW) == MIN_DEFER_SECONDS  # Waits for a turn ...
    clock.now += 0.2
    assert slow.leave(SLOW, elapsed=0.2, error=None) is False
    # ... which it takes without a slot: the destination answers again.
    assert not slow.is_marked(SLOW)
    assert [slow.enter(SLOW, waited=True), slow.enter(SLOW), slow.enter(SLOW)] == [None, None, None]
    assert caplog.messages[-1] == ("Destination https://slow.example:443 answers again (in 0.2 s): no longer limited "
                                   "in this worker process.")


def test_a_deferral_waits_at_least_the_minimum_even_after_fast_slow_attempts() -> None:
    slow, _ = tracker(slots=1, slow_seconds=0.001)
    mark(slow, SLOW, seconds=0.01)
    assert slow.enter(SLOW) is None
    assert slow.enter(SLOW) == MIN_DEFER_SECONDS
    assert slow.enter(SLOW) == 2 * MIN_DEFER_SECONDS


def test_a_long_line_is_a_warning_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hybiscus_webhooks.slow_destinations")
    slow, clock = tracker(slots=1)
    mark(slow, SLOW, seconds=20.0)
    assert slow.enter(SLOW) is None
    waits = [slow.enter(SLOW) for _ in range(17)]
    assert waits[-2:] == [MIN_DEFER_SECONDS + 300.0, MIN_DEFER_SECONDS + 320.0]
    assert [record.levelname for record in caplog.records] == ["WARNING"]
    assert "wait 300 s for a free slot" in caplog.messages[0]
    assert "SLOW_DESTINATION_SLOTS = 1" in caplog.messages[0]
    clock.now += MARK_SECONDS - 1
    slow.enter(SLOW)
    assert len(caplog.records) == 1
    clock.now += 1
    slow.enter(SLOW)
    assert len(caplog.records) == 2


def test_attempts_in_flight_when_a_destination_is_marked_count_against_the_slots() -> None:
    slow, clock = tracker(slots=2)
    for _ in range(3):
        assert slow.enter(SLOW) is None
    clock.now += 15
    assert slow.leave(SLOW, elapsed=15.0, error="ReadTimeoutError")
    # Two more of the first three are still in flight: no slot is free.
    assert slow.enter(SLOW) is not None
    slow.leave(SLOW, elapsed=15.0, error="ReadTimeoutError")
    slow.leave(SLOW, elapsed=15.0, error="ReadTimeoutError")
    assert slow.enter(SLOW, waited=True) is None


def test_no_slots_setting_turns_the_limit_off() -> None:
    slow, _ = tracker(slots=None)
    mark(slow, SLOW)
    assert [slow.enter(SLOW) for _ in range(20)] == [None] * 20
    assert [slow.enter(FAST) for _ in range(3)] == [None] * 3  # Nor is a host not known yet held back.
    settings.configure(SLOW_DESTINATION_SLOTS=None)
    assert current() is None
    settings.configure(SLOW_DESTINATION_SLOTS=3, SLOW_DESTINATION_SECONDS=2)
    found = current()
    assert found is not None and found.policy == Policy(2.0, 3)


def test_while_a_destination_hangs_one_not_yet_answered_gets_one_attempt_at_a_time() -> None:
    slow, clock = tracker(slots=1)
    mark(slow, SLOW)
    assert slow.enter(FAST) is None
    # Its first attempt runs: the next delivery waits as long as that attempt has run, at least the minimum.
    assert slow.enter(FAST) == MIN_DEFER_SECONDS
    clock.now += 1.5
    assert slow.enter(FAST, waited=True) == 1.5
    assert not slow.leave(FAST, elapsed=1.5, error=None)
    # It answered: no longer held back, however many go at once.
    assert [slow.enter(FAST) for _ in range(3)] == [None, None, None]
    assert not slow.is_marked(FAST)


def test_a_first_attempt_that_runs_for_the_threshold_marks_its_destination_like_any_other() -> None:
    slow, clock = tracker(slots=1)
    mark(slow, SLOW)
    assert slow.enter(OTHER_SLOW) is None
    clock.now += 5
    # Unanswered for SLOW_DESTINATION_SECONDS: marked, and the one slot is taken by its first attempt.
    assert slow.enter(OTHER_SLOW) == MIN_DEFER_SECONDS
    assert slow.is_marked(OTHER_SLOW)


def test_nobody_is_held_back_while_no_destination_is_marked_slow() -> None:
    slow, clock = tracker(slots=1)
    assert [slow.enter(FAST) for _ in range(3)] == [None, None, None]
    mark(slow, SLOW)
    clock.now += MARK_SECONDS
    assert not slow.is_marked(SLOW)
    assert [slow.enter(OTHER_SLOW) for _ in range(3)] == [None, None, None]


def test_when_the_last_slow_destination_answers_again_nobody_is_held_back() -> None:
    slow, _ = tracker(slots=1)
    mark(slow, SLOW)
    assert slow.enter(FAST) is None and slow.enter(FAST) == MIN_DEFER_SECONDS
    assert slow.enter(SLOW) is None
    slow.leave(SLOW, elapsed=0.1, error=None)  # It answers again: its mark ends now, not in 60 s.
    new = ("http", "new.example", 80)
    assert [slow.enter(new) for _ in range(3)] == [None, None, None]


def test_destinations_that_answered_are_remembered_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slow_destinations, "ANSWERED_MEMORY", 2)
    slow, _ = tracker(slots=1)
    others = [("https", "host%d.example" % index, 443) for index in range(3)]
    for destination in others:
        assert slow.enter(destination) is None
        slow.leave(destination, elapsed=0.1, error=None)
    mark(slow, SLOW)
    # The two that answered last go together; the first was forgotten and probes again.
    for destination in others[1:]:
        assert slow.enter(destination) is None and slow.enter(destination) is None
    assert slow.enter(others[0]) is None and slow.enter(others[0]) == MIN_DEFER_SECONDS


def test_forgotten_destinations_leave_nothing_behind() -> None:
    slow, clock = tracker()
    for index in range(100):
        destination = ("https", "host%d.example" % index, 443)
        assert slow.enter(destination) is None
        slow.leave(destination, elapsed=0.1, error=None)
    mark(slow, SLOW)
    clock.now += MARK_SECONDS + 1
    mark(slow, OTHER_SLOW)
    assert slow.enter(OTHER_SLOW) is None
    assert slow.enter(OTHER_SLOW) is None
    assert slow.enter(OTHER_SLOW) is not None  # Counting the slots dropped SLOW's expired mark.
    assert set(slow._states) == {OTHER_SLOW}


@pytest.mark.parametrize(("name", "value"), [("SLOW_DESTINATION_SLOTS", 0), ("SLOW_DESTINATION_SLOTS", "2"),
                                             ("SLOW_DESTINATION_SECONDS", 0), ("SLOW_DESTINATION_SECONDS", "5")])
def test_bad_values_are_errors_naming_the_setting(name: str, value: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match=name):
        settings.configure(**{name: value})


class Processed(Middleware):
    """Counts the messages a worker has finished with, so a test can wait for one."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = threading.Condition()

    def after_process_message(self, broker: dramatiq.Broker, message: MessageProxy, *,
                              result: Any = None, exception: BaseException | None = None) -> None:
        with self._changed:
            self.count += 1
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self.count >= count, timeout):
                raise TimeoutError("Expected %d processed messages, got %d." % (count, self.count))


class Held:
    """A receiver that keeps each request unanswered until released, then answers 204."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, connection: Connection) -> None:
        while connection.read_request():
            self.release.wait(10)
            if not connection.send(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"):
                return


def test_a_deferred_delivery_is_no_attempt_is_not_lost_and_goes_once_a_slot_frees(
    stub_broker: StubBroker, start_worker: Any, enqueued: Enqueued, clock: DramatiqClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    processed = Processed()
    stub_broker.add_middleware(processed)
    # Every attempt is slow: the first one marks the destination.
    registry = CollectorRegistry()
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, SLOW_DESTINATION_SECONDS=1e-9,
                       SLOW_DESTINATION_SLOTS=1, METRICS_REGISTRY=registry)
    memory = MemoryRecords()
    records.use(memory)
    held = Held()
    held.release.set()
    caplog.set_level(logging.DEBUG, logger="hybiscus_webhooks")
    try:
        with Listener(held) as listener:
            url = listener.url(path="/hook?token=s3cret")
            start_worker(stub_broker, worker_threads=2)
            send(COMPLETED, "task-first", Webhook(url, auth_header="tok-secret"), broker=stub_broker)
            listener.wait_for_requests(1)
            stub_broker.join(QUEUE, fail_fast=False)
            held.release.clear()
            send(COMPLETED, "task-held", Webhook(url, auth_header="tok-secret"), broker=stub_broker)
            listener.wait_for_requests(2)
            # The only slot is taken: this one is put back on the queue, not attempted.
            send(COMPLETED, "task-deferred", Webhook(url, auth_header="tok-secret"), broker=stub_broker)
            eta = enqueued.wait_for_eta(1)
            assert eta == clock.millis() + MIN_DEFER_SECONDS * 1000
            assert len(listener.requested_at) == 2
            [deferred] = records.deliveries("task-deferred", backend=memory)
            assert deferred.state == "pending" and deferred.attempts == ()
            # Its turn, while the slot is still taken: it waits again, still no attempt.
            clock.now = eta / 1000
            second_eta = enqueued.wait_for_eta(2)
            assert len(listener.requested_at) == 2
            # The slot frees once the held one is answered; the deferred one goes at its next turn.
            held.release.set()
            processed.wait_for(4)  # First, held, deferred twice... the held one is the 4th to end.
            [answered] = records.deliveries("task-held", backend=memory)
            assert answered.state == "delivered"
            clock.now = second_eta / 1000
            listener.wait_for_requests(3)
            stub_broker.join(QUEUE, fail_fast=False)
    finally:
        records.use(None)
    [deferred] = records.deliveries("task-deferred", backend=memory)
    assert deferred.state == "delivered"
    assert [attempt.number for attempt in deferred.attempts] == [1]
    assert stub_broker.dead_letters == []
    # Two waits and three attempts, one each.
    assert registry.get_sample_value("hybiscus_webhooks_deferred_total", {"event": COMPLETED}) == 2
    assert registry.get_sample_value("hybiscus_webhooks_attempts_total", {"event": COMPLETED, "outcome": "2xx"}) == 3
    text = caplog.text
    assert "waits 250 ms for a free slot at slow destination http://127.0.0.1:%d." % listener.port in text
    assert "Destination http://127.0.0.1:%d is slow" % listener.port in text
    assert "s3cret" not in text and "tok-secret" not in text


def test_healthy_deliveries_go_on_while_a_hanging_destination_holds_one_thread(
    stub_broker: StubBroker, start_worker: Any
) -> None:
    # Without the limit, the six deliveries to the hanging host would hold all three threads for 30 s.
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, READ_TIMEOUT=30,
                       SLOW_DESTINATION_SECONDS=0.5, SLOW_DESTINATION_SLOTS=1)
    processed = Processed()
    stub_broker.add_middleware(processed)
    answered_once = threading.Lock()

    def slow_then_hanging(connection: Connection) -> None:
        while connection.read_request():
            if not answered_once.acquire(blocking=False):
                hang(connection)
                return
            connection.wait(0.6)  # Slower than SLOW_DESTINATION_SECONDS: marks the host slow.
            connection.send(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")

    with Listener(slow_then_hanging) as hanging, Receiver() as healthy:
        start_worker(stub_broker, worker_threads=3)
        send(COMPLETED, "task-marks", Webhook(hanging.url()), broker=stub_broker)
        processed.wait_for(1)
        for number in range(6):
            send(COMPLETED, "task-hangs-%d" % number, Webhook(hanging.url()), broker=stub_broker)
        for number in range(30):
            send(COMPLETED, "task-%d" % number, Webhook(healthy.url + "/hook"), broker=stub_broker)
        healthy.wait_for(30, timeout=20)
        # The one that marked the host, and the one attempt at a time its slot allows.
        assert len(hanging.requested_at) == 2


def test_attempts_to_destinations_that_have_not_answered_leave_a_thread_free() -> None:
    clock = Clock()
    slow = SlowDestinations(Policy(5.0, 1), threads=4, clock=clock)
    assert slow.enter(FAST) is None
    slow.leave(FAST, elapsed=0.01, error=None)
    new = [("https", "new%d.example" % index, 443) for index in range(4)]
    for destination in new[:3]:
        assert slow.enter(destination) is None
        clock.now += 0.5
    # Three of four threads wait on hosts that have not answered: the last one is kept for the rest.
    assert slow.enter(new[3]) == 0.5  # As long as the youngest of them has run.
    clock.now += 1
    assert slow.enter(new[3]) == 1.5
    assert new[3] not in slow._states  # Deferred before it ever went: nothing of it is kept meanwhile.
    assert [slow.enter(FAST) for _ in range(2)] == [None, None]  # It answered before: it goes.
    # One times out: marked slow, and a thread is free for a host not known yet.
    assert slow.leave(new[0], elapsed=2.5, error="ReadTimeoutError")
    assert slow.enter(new[3]) is None


def test_a_destination_marked_slow_does_not_take_the_kept_thread_either() -> None:
    clock = Clock()
    slow = SlowDestinations(Policy(5.0, 1), threads=3, clock=clock)
    mark(slow, SLOW)  # Its one slot is free again.
    new = [("https", "new%d.example" % index, 443) for index in range(2)]
    for destination in new:
        assert slow.enter(destination) is None
    clock.now += 1
    assert slow.enter(SLOW) is not None
    slow.leave(new[0], elapsed=1.0, error=None)
    assert slow.enter(SLOW, waited=True) is None


def test_a_thread_is_kept_free_only_when_the_worker_threads_are_known_and_the_limit_is_on() -> None:
    new = [("https", "new%d.example" % index, 443) for index in range(8)]
    for threads, slots in [(None, 1), (1, 1), (4, None)]:
        slow = SlowDestinations(Policy(5.0, slots), threads=threads, clock=Clock())
        assert [slow.enter(destination) for destination in new] == [None] * 8, (threads, slots)
    clock = Clock()
    slow = SlowDestinations(Policy(5.0, 1), threads=2, clock=clock)
    assert slow.enter(new[0]) is None
    clock.now += 0.5
    assert slow.enter(new[1]) == 0.5


def test_a_worker_tells_the_tracker_its_threads_until_it_stops(stub_broker: StubBroker, start_worker: Any) -> None:
    settings.configure(REPORT_URL=REPORT_URL, SLOW_DESTINATION_SLOTS=1)
    install(stub_broker)
    found = current()
    assert found is not None and found.threads is None
    worker = start_worker(stub_broker, worker_threads=3)
    found = current()
    assert found is not None and found.threads == 3
    worker.stop()
    found = current()
    assert found is not None and found.threads is None


def test_a_worker_among_hanging_hosts_keeps_a_thread_for_destinations_that_answer(
    stub_broker: StubBroker, start_worker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Three threads and three hosts that hang, none marked slow yet: without the kept thread, all three
    # would wait for READ_TIMEOUT while the healthy receiver got nothing.
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, READ_TIMEOUT=30,
                       SLOW_DESTINATION_SLOTS=1)
    install(stub_broker)
    caplog.set_level(logging.DEBUG, logger="hybiscus_webhooks")
    with Listener(hang) as first, Listener(hang) as second, Listener(hang) as third, Receiver() as healthy:
        start_worker(stub_broker, worker_threads=3)
        send(COMPLETED, "task-known", Webhook(healthy.url + "/hook"), broker=stub_broker)
        healthy.wait_for(1)
        for number, listener in enumerate([first, second]):
            send(COMPLETED, "task-hangs-%d" % number, Webhook(listener.url()), broker=stub_broker)
            listener.wait_for_requests(1)
        send(COMPLETED, "task-hangs-2", Webhook(third.url()), broker=stub_broker)
        for number in range(20):
            send(COMPLETED, "task-%d" % number, Webhook(healthy.url + "/hook"), broker=stub_broker)
        healthy.wait_for(21, timeout=20)
        # Two threads wait on the first two; the third host's delivery waits on the queue, unattempted.
        assert third.requested_at == []
        assert re.search(r"task task-hangs-2 waits \d+ ms for a turn at http://127\.0\.0\.1:%d, which has not "
                         r"answered in this worker process yet\." % third.port, caplog.text)


def test_while_the_attempts_taking_the_other_threads_are_young_a_delivery_waits_for_one_in_its_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A worker whose destinations are all new: first attempts end within a few hundred milliseconds, and
    # sending every delivery that finds the other threads taken round the queue would only churn it.
    clock = Clock()
    slow = SlowDestinations(Policy(5.0, 1), threads=2, clock=clock)
    first, second = ("https", "first.example", 443), ("https", "second.example", 443)
    assert slow.enter(first) is None
    clock.now += 0.1
    waits: list[float] = []

    def first_answers(timeout: float) -> bool:  # Called holding the tracker's lock, as Condition.wait is.
        waits.append(timeout)
        clock.now += 0.05
        slow.leave(first, elapsed=0.15, error=None)
        return True

    monkeypatch.setattr(slow._ended, "wait", first_answers)
    assert slow.enter(second) is None
    assert waits == [pytest.approx(MIN_DEFER_SECONDS - 0.1)]
    # Once, at most: if none ends meanwhile, the delivery goes round the queue.

    def none_ends(timeout: float) -> bool:
        waits.append(timeout)
        return False

    monkeypatch.setattr(slow._ended, "wait", none_ends)
    third = ("https", "third.example", 443)
    assert slow.enter(third) == MIN_DEFER_SECONDS
    assert len(waits) == 2


class _Recorded(threading.Condition):
    """The tracker's condition, telling the test when a thread waits on it and whether the wait was woken."""

    def __init__(self, lock: Any) -> None:
        super().__init__(lock)
        self.waiting = threading.Event()
        self.woken: list[bool] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        woken = super().wait(timeout)
        self.woken.append(woken)
        return woken


def test_an_attempt_ending_wakes_a_delivery_waiting_for_a_thread() -> None:
    slow = SlowDestinations(Policy(5.0, 1), threads=2)
    recorded = slow._ended = _Recorded(slow._lock)
    first, second = ("https", "first.example", 443), ("https", "second.example", 443)
    assert slow.enter(first) is None
    entered: list[float | None] = []
    waiting = threading.Thread(target=lambda: entered.append(slow.enter(second)))
    waiting.start()
    assert recorded.waiting.wait(5)
    slow.leave(first, elapsed=0.01, error=None)
    waiting.join(5)
    assert entered == [None]
    assert recorded.woken == [True]  # By the attempt that ended, not by the end of the wait.
