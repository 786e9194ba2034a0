"""The counts and switches of one run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Options:
    #: Even, so that ABBA runs each variant first as often as second.
    rounds: int = 4
    requests: int = 2000
    duration: float = 5.0
    deliveries: int = 20_000
    backlog: int = 100_000
    backlog_prefetch: int | None = None
    hol_deliveries: int = 10_000
    #: A run with hanging endpoints is cut after max(this, 3 x the run without) seconds.
    hol_min_seconds: float = 20.0
    #: READ_TIMEOUT of the head-of-line runs: how long a hanging endpoint holds a thread.
    hol_read_timeout: float = 2.0
    #: The warm-up run of hol: destinations that all are new to the worker, and how long each takes to answer.
    warmup_destinations: int = 200
    warmup_deliveries: int = 600
    warmup_latency: float = 0.2
    enqueue_calls: int = 1000
    threads: int = 8
    brokers: list[str] = field(default_factory=lambda: ["redis", "rabbitmq"])
    redis_url: str | None = None
    redis_private: bool = False
    #: The private redis-server's pid, whose CPU time the throughput benchmark reads.
    redis_pid: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    signing: bool = False
    records: bool = False
    sealed: bool = False
    #: Address the throughput receiver by the name localhost rather than the literal 127.0.0.1.
    by_name: bool = False
    #: Run every benchmark worker on this CPU alone (``taskset -c``); None lets its threads move between CPUs.
    pin_worker: int | None = None
    quick: bool = False

    @classmethod
    def defaults(cls, *, quick: bool = False) -> Options:
        if not quick:
            return cls()
        return cls(rounds=1, requests=20, duration=1.0, deliveries=50, backlog=200, hol_deliveries=60,
                   hol_min_seconds=3.0, hol_read_timeout=0.5,
                   warmup_destinations=10, warmup_deliveries=20, warmup_latency=0.05,
                   enqueue_calls=20, quick=True)

    def describe(self) -> str:
        pinned = "" if self.pin_worker is None else ", pinned to CPU %d" % self.pin_worker
        return ("rounds %d; middleware %d calls in process, %.0f s of wrk; throughput %d; backlog %d; hol %d; "
                "enqueue %d; worker threads %d%s; brokers %s%s"
                % (self.rounds, self.requests, self.duration, self.deliveries, self.backlog, self.hol_deliveries,
                   self.enqueue_calls, self.threads, pinned, ",".join(self.brokers), " (QUICK: figures mean nothing)"
                   if self.quick else ""))
