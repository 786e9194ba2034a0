"""Delivery records: the state of every delivery and each of its attempts, for operators and tests.

A small backend interface with two implementations: ``RedisRecords`` (the real one) and
``MemoryRecords`` (in this process, for tests and single-process setups). Records hold what an
operator needs and nothing secret: the endpoint is scheme, host, port and path only.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, NamedTuple

import dramatiq

from . import brokers, compact, metrics, settings
from .errors import ImproperlyConfigured

if TYPE_CHECKING:
    import redis

#: The states of a delivery.
PENDING = "pending"
RETRYING = "retrying"
DELIVERED = "delivered"
EXHAUSTED = "exhausted"
REFUSED = "refused"
STATES = (PENDING, RETRYING, DELIVERED, EXHAUSTED, REFUSED)
#: States after which no attempt follows unless an operator redelivers.
FAILED_STATES = (EXHAUSTED, REFUSED)
#: Bytes of a receiver's answer kept per attempt.
RESPONSE_HEAD_BYTES = 512
#: Attempts kept per delivery; redeliveries add to them.
MAX_ATTEMPTS = 50
#: Seconds a records write may wait on Redis: a record is never worth delaying a delivery.
REDIS_TIMEOUT = 0.5
#: Most record writes sent to Redis in one round trip (one script call, which holds Redis a few ms).
BATCH_SIZE = 200
#: Seconds the writer thread waits for more writes to join a batch: under load, a round trip for
#: dozens of writes rather than one each; idle, a record reaches Redis this much later.
LINGER_SECONDS = 0.05
#: Record writes that may wait for Redis; beyond them new ones are dropped (and counted), so that a
#: stalled Redis never fills a worker's memory.
MAX_WAITING_WRITES = 20_000
#: Seconds between two warnings about writes dropped that way.
DROPS_REPORTED_EVERY = 10.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attempt:
    """One attempt: when it started, what it got and how long it took."""

    number: int
    at: float
    status: int | None
    error: str | None
    latency: float
    response_head: str = ""

    def result(self) -> str:
        if self.status is not None and self.error is None:
            return "HTTP %d" % self.status
        if self.status is not None:
            return "HTTP %d, then %s" % (self.status, self.error)
        return str(self.error)


@dataclass(frozen=True)
class DeliveryRecord:
    """One task's event at one endpoint, across all its attempts and redeliveries."""

    delivery_id: str
    task_id: str
    event: str
    endpoint: str
    state: str
    updated_at: float
    next_attempt_at: float | None = None
    attempts: tuple[Attempt, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RecordsBackend(ABC):
    """Where records are kept. Writes may raise; the caller (``tracking``) never lets that reach a delivery."""

    @abstractmethod
    def write(
        self,
        delivery: Mapping[str, Any],
        *,
        state: str,
        at: float,
        attempt: Attempt | None = None,
        next_attempt_at: float | None = None,
        only_if_new: bool = False,
    ) -> None:
        """Record ``state`` (and ``attempt``) of ``delivery``, the delivery actor's argument.

        With ``only_if_new`` the state is set only if the delivery has none yet, so a pending
        record written after the message was enqueued never hides an attempt a worker already made.
        """

    @abstractmethod
    def get(self, delivery_id: str) -> DeliveryRecord | None:
        """One delivery's record, or None."""

    @abstractmethod
    def for_task(self, task_id: str) -> list[DeliveryRecord]:
        """Every delivery of a task, by event then endpoint."""

    @abstractmethod
    def failed(self, *, limit: int = 100) -> list[DeliveryRecord]:
        """The latest exhausted or refused deliveries, newest first."""

    @abstractmethod
    def ping(self) -> None:
        """Raise if the records cannot be reached."""

    def describe(self) -> str:
        return type(self).__name__


def _ordered(records: list[DeliveryRecord]) -> list[DeliveryRecord]:
    return sorted(records, key=lambda record: (record.event, record.endpoint, record.delivery_id))


class MemoryRecords(RecordsBackend):
    """Records in this process's memory, bounded in number and age."""

    def __init__(self, *, retention: float = 7 * 24 * 3600, max_deliveries: int = 10_000) -> None:
        self.retention = retention
        self.max_deliveries = max_deliveries
        self._records: OrderedDict[str, DeliveryRecord] = OrderedDict()
        self._lock = threading.Lock()

    def write(
        self, delivery: Mapping[str, Any], *, state: str, at: float, attempt: Attempt | None = None,
        next_attempt_at: float | None = None, only_if_new: bool = False,
    ) -> None:
        with self._lock:
            record = self._records.pop(delivery["id"], None)
            if record is None:
                record = DeliveryRecord(delivery["id"], delivery["task_id"], delivery["event"], delivery["endpoint"],
                                        state=state, updated_at=at, next_attempt_at=next_attempt_at)
            elif not only_if_new:
                record = replace(record, state=state, updated_at=at, next_attempt_at=next_attempt_at)
            if attempt is not None:
                record = replace(record, attempts=(record.attempts + (attempt,))[-MAX_ATTEMPTS:])
            self._records[record.delivery_id] = record
            while self._records and (
                len(self._records) > self.max_deliveries
                or next(iter(self._records.values())).updated_at < at - self.retention
            ):
                self._records.popitem(last=False)

    def get(self, delivery_id: str) -> DeliveryRecord | None:
        with self._lock:
            return self._records.get(delivery_id)

    def for_task(self, task_id: str) -> list[DeliveryRecord]:
        with self._lock:
            return _ordered([record for record in self._records.values() if record.task_id == task_id])

    def ping(self) -> None:
        """Always reachable."""

    def describe(self) -> str:
        return "this process's memory"

    def failed(self, *, limit: int = 100) -> list[DeliveryRecord]:
        with self._lock:
            found = [record for record in reversed(self._records.values()) if record.state in FAILED_STATES]
        return found[:limit]


class _Write(NamedTuple):
    delivery_id: str
    task_id: str
    event: str
    endpoint: str
    state: str
    at: float
    attempt: Attempt | None
    next_attempt_at: float | None
    only_if_new: bool


class _Writer:
    """Sends a backend's writes from a thread of its own, all that are waiting in one round trip.

    A delivery thread only appends to a queue. The writer thread sends what has piled up
    ``LINGER_SECONDS`` after the first write of a batch, at once when a batch is full or a flush
    waits.
    """

    def __init__(self, send: Callable[[list[_Write]], None],
                 failed: Callable[[int, BaseException | None], None]) -> None:
        self._send = send
        self._failed = failed
        self._reset()
        _writers.add(self)

    def _reset(self) -> None:
        # Also in a forked child: the parent's thread and lock state do not come along.
        # A delivery thread takes the lock itself (a Condition's __enter__ and __exit__ are Python calls).
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._waiting: deque[_Write] = deque()
        self._queued = self._done = self._dropped = 0
        # Writes up to this count are awaited by a flush: send them without lingering.
        self._flush_to = 0
        self._dropped_reported_at = 0.0
        self._thread: threading.Thread | None = None

    def put(self, write: _Write) -> None:
        with self._lock:
            if len(self._waiting) >= MAX_WAITING_WRITES:
                # Counted now, reported by the writer thread at most every DROPS_REPORTED_EVERY seconds.
                self._dropped += 1
            else:
                self._waiting.append(write)
                self._queued += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="hybiscus-webhooks-records", daemon=True)
                self._thread.start()
            # Wake the writer only when it has something to do: not for every write of a batch.
            if len(self._waiting) in (1, BATCH_SIZE):
                self._changed.notify_all()

    def flush(self, timeout: float) -> bool:
        with self._changed:
            target = self._queued
            self._flush_to = max(self._flush_to, target)
            self._changed.notify_all()
            return self._changed.wait_for(lambda: self._done >= target, timeout)

    def _run(self) -> None:
        while True:
            with self._changed:
                if not self._changed.wait_for(lambda: bool(self._waiting), _WRITER_IDLE_SECONDS):
                    self._thread = None  # The next write starts another.
                    return
                self._changed.wait_for(
                    lambda: len(self._waiting) >= BATCH_SIZE or self._flush_to > self._done, LINGER_SECONDS)
                batch = [self._waiting.popleft() for _ in range(min(BATCH_SIZE, len(self._waiting)))]
            try:
                self._send(batch)
            except Exception as exc:
                self._failed(len(batch), exc)
            with self._changed:
                self._done += len(batch)
                dropped = self._dropped
                now = time.monotonic()
                # Every so often while Redis lags, and once it has caught up: never a line per write.
                report = dropped and (not self._waiting or now - self._dropped_reported_at >= DROPS_REPORTED_EVERY)
                if report:
                    self._dropped, self._dropped_reported_at = 0, now
                self._changed.notify_all()
            if report:
                self._failed(dropped, None)


_writers: weakref.WeakSet[_Writer] = weakref.WeakSet()
# An idle writer's thread ends, so that a backend nobody uses any more can go.
_WRITER_IDLE_SECONDS = 5.0


def flush(timeout: float = 4 * REDIS_TIMEOUT) -> bool:
    """Wait until every record write of this process so far has been sent; False if one took too long."""
    flushed = [writer.flush(timeout) for writer in list(_writers)]  # Every one, even after a timeout.
    return all(flushed)


class FlushRecords(dramatiq.Middleware):
    """Sends a worker's last record writes when it shuts down (``install`` adds it)."""

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        flush()


def _forget_writes_of_parent() -> None:
    for writer in list(_writers):
        writer._reset()


os.register_at_fork(after_in_child=_forget_writes_of_parent)
atexit.register(flush)


# One call writes a whole batch. ARGV: the key prefix, the ttl, most attempts kept, the writes as a
# JSON array, and the oldest failure kept (milliseconds). A write is [id, task_id, event, endpoint,
# state, at, next_attempt_at or "", only_if_new 0/1, failed 0/1, attempt JSON or ""]. A delivery is
# one hash, "<prefix>d:<id>": task, event (without "report."), to (the endpoint), state, at (updated),
# next (the next attempt), and its attempts a1, a2, ... counted by n; a task's deliveries are the
# fields of "<prefix>t:<task_id>"; "<prefix>failed" scores the failed deliveries' ids by their at.
# Short names, and at and next as integer milliseconds, which Redis packs as integers: a waiting
# delivery's records cost less than its message does, and stay small enough for Redis to keep
# them packed. The keys are made here, not passed: records need a single Redis, not a cluster.
_WRITE_SCRIPT = """
local prefix, ttl, keep = ARGV[1], ARGV[2], tonumber(ARGV[3])
local failed = prefix .. 'failed'
local any_failed = false
for _, write in ipairs(cjson.decode(ARGV[4])) do
  local id, task, state, at, next_at = write[1], write[2], write[5], write[6], write[7]
  local delivery, index = prefix .. 'd:' .. id, prefix .. 't:' .. task
  redis.call('HSET', delivery, 'task', task, 'event', write[3], 'to', write[4])
  if write[8] == 1 then
    redis.call('HSETNX', delivery, 'state', state)
    redis.call('HSETNX', delivery, 'at', at)
  else
    redis.call('HSET', delivery, 'state', state, 'at', at)
    if next_at == '' then
      redis.call('HDEL', delivery, 'next')
    else
      redis.call('HSET', delivery, 'next', next_at)
    end
    if write[9] == 1 then
      redis.call('ZADD', failed, at, id)
      any_failed = true
    else
      redis.call('ZREM', failed, id)
    end
  end
  if write[10] ~= '' then
    local n = redis.call('HINCRBY', delivery, 'n', 1)
    redis.call('HSET', delivery, 'a' .. n, write[10])
    if n > keep then
      redis.call('HDEL', delivery, 'a' .. (n - keep))
    end
  end
  redis.call('HSET', index, id, '')
  redis.call('EXPIRE', index, ttl)
  redis.call('EXPIRE', delivery, ttl)
end
if any_failed then
  redis.call('ZREMRANGEBYSCORE', failed, '-inf', ARGV[5])
  redis.call('EXPIRE', failed, ttl)
end
"""


def _millis(at: float) -> str:
    return str(round(at * 1000))


#: Every event starts with this; records keep the rest.
_EVENT_PREFIX = "report."


def _short_event(event: str) -> str:
    return event[len(_EVENT_PREFIX):] if event.startswith(_EVENT_PREFIX) else event


def _full_event(stored: str) -> str:
    return stored if "." in stored else _EVENT_PREFIX + stored


def _attempt_json(attempt: Attempt) -> str:
    # An array, not an object, and the start to the millisecond (Dramatiq's clock has no finer), so
    # that a plain attempt stays within the 64 bytes up to which Redis packs a hash's values.
    # The numbers are formatted, not encoded: a float's shortest repr and an encoder made per call
    # cost about 20k instructions an attempt, in every worker's records thread. "%.3f" and "%.6f"
    # are the values of round(x, 3) and round(x, 6) (the latency is kept to the microsecond).
    status = "null" if attempt.status is None else "%d" % attempt.status
    error = "null" if attempt.error is None else compact.dumps(attempt.error)
    head = "," + compact.dumps(attempt.response_head) if attempt.response_head else ""
    return "[%d,%.3f,%s,%s,%.6f%s]" % (attempt.number, attempt.at, status, error, attempt.latency, head)


class RedisRecords(RecordsBackend):
    """Records in Redis: a hash per delivery with its attempts, a hash per task of its deliveries' ids, and
    a sorted set indexing the failures.

    Every key expires ``retention`` seconds after the delivery's last write.
    """

    def __init__(self, client: redis.Redis[Any], *, key_prefix: str, retention: float) -> None:
        self.client = client
        self.key_prefix = key_prefix
        self.retention = retention
        self._write_script = client.register_script(_WRITE_SCRIPT)
        self._writer = _Writer(self._send, self._failed)

    def _key(self, kind: str, name: str = "") -> str:
        return "%s%s:%s" % (self.key_prefix, kind, name) if name else self.key_prefix + kind

    def write(
        self, delivery: Mapping[str, Any], *, state: str, at: float, attempt: Attempt | None = None,
        next_attempt_at: float | None = None, only_if_new: bool = False,
    ) -> None:
        """Queue the write for this process's writer thread: the caller never waits on Redis."""
        self._writer.put(_Write(delivery["id"], delivery["task_id"], delivery["event"], delivery["endpoint"], state,
                                at, attempt, next_attempt_at, only_if_new))

    def flush(self, timeout: float = 4 * REDIS_TIMEOUT) -> bool:
        """Wait until every write queued so far has been sent (or has failed); False on timeout."""
        return self._writer.flush(timeout)

    def close(self) -> None:
        """Send what is waiting, then close the connections."""
        self.flush()
        self.client.close()

    def _send(self, writes: list[_Write]) -> None:
        # The whole batch in one call of a script, in the order the writes came: one command to pack
        # and parse here however many writes wait, and each write atomic on the server.
        rows = [
            [write.delivery_id, write.task_id, _short_event(write.event), write.endpoint, write.state,
             _millis(write.at), "" if write.next_attempt_at is None else _millis(write.next_attempt_at),
             int(write.only_if_new),
             int(write.state in FAILED_STATES), "" if write.attempt is None else _attempt_json(write.attempt)]
            for write in writes
        ]
        oldest_kept = max(write.at for write in writes) - self.retention
        self._write_script(args=[self.key_prefix, max(1, math.ceil(self.retention)), MAX_ATTEMPTS,
                                 compact.dumps(rows), _millis(oldest_kept)])

    def _failed(self, count: int, exc: BaseException | None) -> None:
        # The class name only: a Redis error's text can hold addresses, never worth the risk.
        logger.warning("Could not record %d write(s) in %s: %s.", count, self.describe(),
                       "dropped, too many were waiting for Redis" if exc is None else type(exc).__name__)
        for _ in range(count):
            metrics.record_failed()

    def _read(self, delivery_ids: list[str]) -> list[DeliveryRecord]:
        pipe = self.client.pipeline(transaction=False)
        for delivery_id in delivery_ids:
            pipe.hgetall(self._key("d", delivery_id))
        records = []
        for delivery_id, fields in zip(delivery_ids, pipe.execute()):
            if fields.get("state") is None:
                continue
            next_attempt_at = fields.get("next")
            attempts = sorted((int(name[1:]), value) for name, value in fields.items() if name[:1] == "a"
                              and name[1:].isdigit())
            records.append(DeliveryRecord(
                delivery_id=delivery_id, task_id=fields["task"], event=_full_event(fields["event"]),
                endpoint=fields["to"], state=fields["state"], updated_at=int(fields["at"]) / 1000,
                next_attempt_at=None if next_attempt_at is None else int(next_attempt_at) / 1000,
                attempts=tuple(Attempt(*json.loads(attempt)) for _, attempt in attempts),
            ))
        return records

    def get(self, delivery_id: str) -> DeliveryRecord | None:
        flush()  # This process's own writes first.
        found = self._read([delivery_id])
        return found[0] if found else None

    def for_task(self, task_id: str) -> list[DeliveryRecord]:
        flush()  # This process's own writes first.
        return _ordered(self._read(sorted(self.client.hkeys(self._key("t", task_id)))))

    def failed(self, *, limit: int = 100) -> list[DeliveryRecord]:
        flush()  # This process's own writes first.
        delivery_ids = self.client.zrevrange(self._key("failed"), 0, max(0, limit - 1))
        return self._read(list(delivery_ids))

    def ping(self) -> None:
        self.client.ping()

    def describe(self) -> str:
        return "Redis at %s (keys %s*)" % (describe_redis(self.client), self.key_prefix)


def describe_redis(client: redis.Redis[Any]) -> str:
    """Where a client points, without its password."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return "unix:%s db %s" % (kwargs["path"], kwargs.get("db", 0))
    return "%s:%s db %s" % (kwargs.get("host", "localhost"), kwargs.get("port", 6379), kwargs.get("db", 0))


def redis_client(url: str | None = None, *, like: redis.Redis[Any] | None = None) -> redis.Redis[Any]:
    """A client with short timeouts and no retries, from ``url`` or with the connection parameters of ``like``."""
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:
        raise ImproperlyConfigured(
            "Delivery records need the redis package: pip install 'hybiscus-webhooks[redis]', "
            "or set RECORDS_REDIS_URL = False."
        ) from None
    options: dict[str, Any] = {
        "socket_timeout": REDIS_TIMEOUT, "socket_connect_timeout": REDIS_TIMEOUT, "decode_responses": True,
        # redis-py 6+ retries 3 times with backoff by default: that would stall a delivery.
        "retry": Retry(NoBackoff(), 0),
    }
    if url is not None:
        return redis.Redis.from_url(url, **options)
    if like is None:
        raise ValueError("redis_client() needs a url or a client to copy.")
    pool = like.connection_pool
    kwargs = {**pool.connection_kwargs, **options}
    return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs))


def from_settings(broker: dramatiq.Broker | None = None) -> RecordsBackend | None:
    """A new backend as the settings say; with RECORDS_REDIS_URL None, the Redis of ``broker`` if it has one."""
    values = settings.get()
    url = values.RECORDS_REDIS_URL
    if url is False:
        return None
    if url is None:
        if broker is None or brokers.kind(broker) != "redis":
            return None
        client = broker.client  # type: ignore[attr-defined]
        return RedisRecords(redis_client(like=client), key_prefix=values.RECORDS_KEY_PREFIX,
                            retention=values.RECORDS_RETENTION)
    return RedisRecords(redis_client(url), key_prefix=values.RECORDS_KEY_PREFIX, retention=values.RECORDS_RETENTION)


def _is_redis_broker(broker: dramatiq.Broker | None) -> bool:
    if broker is None:
        return False
    try:
        from dramatiq.brokers.redis import RedisBroker
    except ImportError:  # Without the redis extra no broker can be a RedisBroker.
        return False
    return isinstance(broker, RedisBroker)


_lock = threading.Lock()
_explicit: RecordsBackend | None = None
_from_settings: tuple[RecordsBackend | None] | None = None
_broker: weakref.ReferenceType[dramatiq.Broker] | None = None


def use(backend: RecordsBackend | None) -> None:
    """Write records to ``backend`` in this process instead of where the settings say; None undoes it."""
    global _explicit
    with _lock:
        _explicit = backend


def bind(broker: dramatiq.Broker) -> None:
    """Remember the broker the delivery actor runs on: with RECORDS_REDIS_URL None, records go to its Redis."""
    global _broker, _from_settings
    with _lock:
        if _broker is None or _broker() is not broker:
            _broker = weakref.ref(broker)
            _from_settings = None


def current() -> RecordsBackend | None:
    """The backend records are written to, or None when records are off."""
    global _from_settings
    explicit = _explicit
    if explicit is not None:
        return explicit
    built = _from_settings
    if built is None:
        with _lock:
            if _from_settings is None:
                _from_settings = (from_settings(_broker() if _broker is not None else None),)
            built = _from_settings
    return built[0]


def _forget() -> None:
    global _from_settings
    with _lock:
        forgotten, _from_settings = _from_settings, None
    if forgotten is not None and isinstance(forgotten[0], RedisRecords):
        forgotten[0].close()


settings.on_reload(_forget)


def deliveries(task_id: str, *, backend: RecordsBackend | None = None) -> list[DeliveryRecord]:
    """Every recorded delivery of ``task_id``: the Python API behind ``hybiscus-webhooks deliveries``."""
    found = backend or current()
    if found is None:
        raise ImproperlyConfigured(
            "Delivery records are off: set RECORDS_REDIS_URL, or run the delivery actor on a RedisBroker."
        )
    return found.for_task(task_id)
