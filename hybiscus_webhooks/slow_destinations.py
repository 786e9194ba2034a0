"""Keeps destinations that answer slowly, or never, from taking every thread of a worker process.

An attempt that takes ``SLOW_DESTINATION_SECONDS`` or more, or times out, marks its destination
(scheme, host and port) slow in this process until ``MARK_SECONDS`` after it; so does an attempt still
running after that long with no other attempt to the destination ended meanwhile, so that threads
stop piling onto a destination that hangs before its first timeout. The mark lasts while deliveries
to the destination wait for their turn, and ends with the first attempt to it that is not slow.
Attempts to all the
destinations marked slow share ``SLOW_DESTINATION_SLOTS`` threads; the other threads stay free for
everyone else. A delivery to a slow destination that finds no free slot is not attempted: the
delivery actor puts it back on the queue for its turn, which the tracker hands out one slow attempt's
time apart, so that each delivery waits about once rather than coming back again and again.

While some destination is marked slow, one that has not answered in this process yet gets no second
attempt before its first one ends: when hosts hang, threads would otherwise pile onto the next
unknown host, which may hang too. Its other deliveries wait on the queue for as long as that first
attempt has been running so far (at least ``MIN_DEFER_SECONDS``); once it answers they all go, and
if it runs for ``SLOW_DESTINATION_SECONDS`` the destination is marked slow like any other.

Attempts to destinations that have not answered in this process (new ones, and those marked slow)
never take the last of the worker's threads (``RESERVED_THREADS``): when a worker starts among
hosts that hang, nothing tells them from healthy ones before an attempt to them ends, and without
this every thread could wait on one of them for ``READ_TIMEOUT`` while the destinations that answer
get nothing. A delivery to an unknown destination that finds them all taken waits for one of them to
end, in its thread, for as long as the youngest of them has to go to have run ``MIN_DEFER_SECONDS``
(so that a worker whose destinations are all new, as after a restart, does not send its deliveries
round the queue while first attempts take a few hundred milliseconds); then it waits on the queue
for as long as the youngest has run.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import dramatiq
import dramatiq.common
from dramatiq.middleware import Middleware

from . import settings

logger = logging.getLogger(__name__)

#: How long a destination stays marked slow after its last slow attempt.
MARK_SECONDS = 60.0
#: Least wait of a deferred delivery, so that it never spins on the queue.
MIN_DEFER_SECONDS = 0.25
#: Destinations that answered, remembered per process (least recently answered forgotten first):
#: they are never held back while another destination's first attempt runs.
ANSWERED_MEMORY = 4096
#: Threads of a worker process that attempts to destinations that have not answered never take.
RESERVED_THREADS = 1
#: A wait for a turn longer than this is logged as a WARNING, at most once per MARK_SECONDS: the slow
#: destinations get more deliveries than their slots can attempt.
LONG_WAIT_SECONDS = 300.0

#: (scheme, host, port) of a webhook URL.
Destination = tuple[str, str, int]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def dramatiq_seconds() -> float:
    # Dramatiq's clock, which also releases the deferred deliveries: tests move one clock for both.
    return dramatiq.common.current_millis() / 1000


# A worker sends to the same few URLs over and over: each is parsed once, up to this many.
@functools.lru_cache(maxsize=1024)
def destination_of(url: str) -> Destination | None:
    """Scheme, host and port of ``url``; None if it has none (the sender refuses such a URL)."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or _DEFAULT_PORTS[scheme]
    except (ValueError, KeyError):
        return None
    if not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port


def describe(destination: Destination) -> str:
    """The destination as a log line shows it: scheme, host and port, nothing else of the URL."""
    scheme, host, port = destination
    return "%s://%s:%d" % (scheme, "[%s]" % host if ":" in host else host, port)


@dataclass(frozen=True)
class Policy:
    """When an attempt marks its destination slow, and how many attempts slow destinations may run at once."""

    slow_seconds: float
    #: Attempts at once to all slow destinations together; None: no limit.
    slots: int | None
    mark_seconds: float = MARK_SECONDS

    def is_slow(self, elapsed: float, error: str | None) -> bool:
        # urllib3's ReadTimeoutError and ConnectTimeoutError, socket.timeout's TimeoutError.
        return elapsed >= self.slow_seconds or (error is not None and "Timeout" in error)


@dataclass(frozen=True)
class _WaitHere:
    """What ``enter`` does when the attempts that take the other threads are young: wait for one to end."""

    seconds: float


@dataclass
class _State:
    in_flight: int = 0
    marked_until: float = float("-inf")
    # Seconds of its last slow attempt: how long a slot it takes stays taken.
    slow_attempt: float = 0.0
    # Since when attempts have been in flight with none of them ending.
    busy_since: float = 0.0


class SlowDestinations:
    """The destinations of one worker process: attempts in flight, and which ones are marked slow. Thread-safe."""

    def __init__(self, policy: Policy, *, threads: int | None = None,
                 clock: Callable[[], float] = dramatiq_seconds) -> None:
        self.policy = policy
        #: The worker's threads, when known: attempts to destinations that have not answered keep
        #: RESERVED_THREADS of them free. None (outside a worker): no such bound.
        self.threads = threads
        self.clock = clock
        # Taken directly by ``with``: a Condition's own __enter__ and __exit__ are Python calls, twice
        # per attempt. The condition over it is notified when an attempt ends and someone waits for that.
        self._lock = threading.RLock()
        self._ended = threading.Condition(self._lock)
        self._waiting = 0
        self._states: dict[Destination, _State] = {}
        # Attempts in flight to all destinations.
        self._in_flight = 0
        # When the next deferred delivery gets its turn at a slot.
        self._next_turn = float("-inf")
        self._warned_at = float("-inf")
        self._answered: OrderedDict[Destination, None] = OrderedDict()

    def enter(self, destination: Destination, *, waited: bool = False) -> float | None:
        """Start an attempt to ``destination``: None if it may go now, else the seconds to defer it by.

        ``waited`` says the delivery was deferred before and is back for its turn: it then takes a free
        slot before any delivery that has not waited yet.
        """
        with self._lock:
            turn = self._enter(destination, waited, may_wait=True)
            if isinstance(turn, _WaitHere):
                self._waiting += 1
                try:
                    self._ended.wait(turn.seconds)
                finally:
                    self._waiting -= 1
                turn = self._enter(destination, waited, may_wait=False)
            assert not isinstance(turn, _WaitHere)
            return turn

    def _enter(self, destination: Destination, waited: bool, *, may_wait: bool) -> float | _WaitHere | None:
        now = self.clock()
        state = self._states.get(destination)
        if state is None:
            state = self._states[destination] = _State()
        stuck = now - state.busy_since
        if state.in_flight and state.marked_until <= now and stuck >= self.policy.slow_seconds:
            self._mark(destination, state, now, stuck, "no answer for %.1f s" % stuck)
        slots = self.policy.slots
        if (slots is not None and state.in_flight and state.marked_until <= now
                and destination not in self._answered and self._any_marked(now)):
            # Other destinations hang, and this one has not answered yet: its first attempt finds out.
            return max(stuck, MIN_DEFER_SECONDS)
        if slots is not None and state.marked_until <= now and destination not in self._answered:
            youngest = self._youngest_unanswered(now)
            if youngest is not None:
                if not state.in_flight:
                    del self._states[destination]  # Nothing of it to keep while it waits, here or on the queue.
                if may_wait and youngest < MIN_DEFER_SECONDS:
                    # Young attempts, likely to end soon: wait for one here rather than go round the queue.
                    return _WaitHere(MIN_DEFER_SECONDS - max(youngest, 0.0))
                return max(youngest, MIN_DEFER_SECONDS)
        if slots is not None and state.marked_until > now:
            # A free slot, and not the thread kept for destinations that have answered.
            free = self._slow_in_flight(now) < slots and self._youngest_unanswered(now) is None
            spacing = max(state.slow_attempt / slots, MIN_DEFER_SECONDS)
            if not free and waited:
                # Its turn came, but an attempt took longer than the last one: the next slot, not
                # the end of the line.
                return spacing
            if not free or (not waited and self._next_turn > now):
                turn = max(self._next_turn, now + MIN_DEFER_SECONDS)
                self._next_turn = turn + spacing
                # Still marked when this delivery comes back for its turn, however far off: a mark
                # that ran out first would let the waiting deliveries and new ones all go at once.
                state.marked_until = max(state.marked_until, turn + self.policy.mark_seconds)
                if turn - now > LONG_WAIT_SECONDS and now - self._warned_at >= self.policy.mark_seconds:
                    self._warned_at = now
                    logger.warning(
                        "Deliveries to slow destinations now wait %d s for a free slot in this worker process: "
                        "they get more deliveries than SLOW_DESTINATION_SLOTS = %d can attempt. Raise it (and "
                        "--threads) if this lasts.", turn - now, slots,
                    )
                return turn - now
        if not state.in_flight:
            state.busy_since = now
        state.in_flight += 1
        self._in_flight += 1
        return None

    def leave(self, destination: Destination, *, elapsed: float, error: str | None) -> bool:
        """End an attempt that ``enter`` let go; True if it marked its destination slow, when it was not."""
        with self._lock:
            now = self.clock()
            state = self._states[destination]
            state.in_flight -= 1
            self._in_flight -= 1
            state.busy_since = now
            newly = False
            if self.policy.is_slow(elapsed, error):
                newly = state.marked_until <= now
                self._mark(destination, state, now, elapsed, error or "an attempt took %.1f s" % elapsed)
                self._answered.pop(destination, None)
            else:
                self._answered[destination] = None
                self._answered.move_to_end(destination)
                if len(self._answered) > ANSWERED_MEMORY:
                    self._answered.popitem(last=False)
                if state.marked_until > now:
                    # It answers again: its waiting deliveries go as their turns come, without a slot.
                    state.marked_until = now
                    logger.info("Destination %s answers again (in %.1f s): no longer limited in this worker "
                                "process.", describe(destination), elapsed)
            if state.in_flight == 0 and state.marked_until <= now:
                del self._states[destination]
            if self._waiting:
                self._ended.notify_all()
            return newly

    def is_marked(self, destination: Destination) -> bool:
        with self._lock:
            state = self._states.get(destination)
            return state is not None and state.marked_until > self.clock()

    def _mark(self, destination: Destination, state: _State, now: float, seconds: float, reason: str) -> None:
        if state.marked_until <= now:
            logger.info(
                "Destination %s is slow (%s): for the next %d s this worker process runs at most %s attempts at "
                "once to the slow destinations; their other deliveries wait on the queue for a free slot.",
                describe(destination), reason, self.policy.mark_seconds, self.policy.slots,
            )
        state.marked_until = max(state.marked_until, now + self.policy.mark_seconds)
        state.slow_attempt = seconds

    def _youngest_unanswered(self, now: float) -> float | None:
        # Only runs for a destination that has not answered: None if an attempt to it leaves a reserved
        # thread free, else how long the youngest attempt to a destination that has not answered has run.
        if self.threads is None:
            return None
        room = self.threads - RESERVED_THREADS
        if room < 1 or self._in_flight < room:
            return None  # Not enough attempts in flight to take the room, whoever they go to.
        taken = 0
        youngest = float("inf")
        for destination, state in self._states.items():
            if state.in_flight and destination not in self._answered:
                taken += state.in_flight
                youngest = min(youngest, now - state.busy_since)
        return youngest if taken >= room else None

    def _any_marked(self, now: float) -> bool:
        # Only runs for a destination with an attempt in flight that has not answered yet.
        return any(state.marked_until > now for state in self._states.values())

    def _slow_in_flight(self, now: float) -> int:
        # Only runs for a destination marked slow; forgets the marks that ran out on the way.
        count = 0
        for destination, state in list(self._states.items()):
            if state.marked_until > now:
                count += state.in_flight
            elif state.in_flight == 0:
                del self._states[destination]
        return count


class WorkerThreads(Middleware):
    """Tells the tracker of each worker process how many threads its worker runs."""

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        _set_worker_threads(getattr(worker, "worker_threads", None))

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        _set_worker_threads(None)


def _set_worker_threads(threads: int | None) -> None:
    global _worker_threads
    _worker_threads = threads
    _tracker.forget()  # The next attempt builds a tracker that knows them.


# The threads of this process's worker, once it boots.
_worker_threads: int | None = None


def _tracker_from_settings() -> SlowDestinations | None:
    values = settings.get()
    policy = Policy(values.SLOW_DESTINATION_SECONDS, values.SLOW_DESTINATION_SLOTS)
    return None if policy.slots is None else SlowDestinations(policy, threads=_worker_threads)


_tracker = settings.PerProcess(_tracker_from_settings)


def current() -> SlowDestinations | None:
    """The tracker of this process, built from the settings on first use; None when SLOW_DESTINATION_SLOTS is None."""
    return _tracker.get()
