"""Where tasks live, with their Report definition and PDF: Redis with a TTL for deployments, memory for one process.

The definition is kept here, not in the render message, because Dramatiq writes a failed
message's arguments into its logs and a definition holds its customers' auth headers.
"""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

QUEUED = "QUEUED"
RUNNING = "RUNNING"
SUCCESS = "SUCCESS"
FAILED = "FAILED"


@dataclass(frozen=True)
class Task:
    task_id: str
    status: str
    error_message: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "status": self.status, "error_message": self.error_message}


class TaskStore(ABC):
    """Each ``put`` updates a task and keeps it, with what was stored with it before, ``ttl`` seconds from then."""

    def __init__(self, *, ttl: int) -> None:
        self.ttl = ttl

    @abstractmethod
    def put(self, task: Task, *, report: dict[str, Any] | None = None, pdf: bytes | None = None) -> None: ...

    @abstractmethod
    def get(self, task_id: str) -> Task | None: ...

    @abstractmethod
    def get_report(self, task_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def get_pdf(self, task_id: str) -> bytes | None: ...

    def close(self) -> None:  # noqa: B027 - a store without connections has nothing to close
        """Release connections."""


@dataclass
class _Entry:
    until: float
    task: Task
    report: dict[str, Any] | None = field(default=None, repr=False)
    pdf: bytes | None = field(default=None, repr=False)


class MemoryTaskStore(TaskStore):
    """Good for one process only: the embedded demo and unit tests."""

    def __init__(self, *, ttl: int, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(ttl=ttl)
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def put(self, task: Task, *, report: dict[str, Any] | None = None, pdf: bytes | None = None) -> None:
        now = self.clock()
        with self._lock:
            # Dropping what expired on every write keeps a long-running demo's memory bounded.
            for task_id in [key for key, entry in self._entries.items() if entry.until <= now]:
                del self._entries[task_id]
            entry = self._entries.setdefault(task.task_id, _Entry(now, task))
            entry.until, entry.task = now + self.ttl, task
            entry.report = entry.report if report is None else report
            entry.pdf = entry.pdf if pdf is None else pdf

    def _live(self, task_id: str) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(task_id)
        return entry if entry is not None and entry.until > self.clock() else None

    def get(self, task_id: str) -> Task | None:
        entry = self._live(task_id)
        return entry.task if entry else None

    def get_report(self, task_id: str) -> dict[str, Any] | None:
        entry = self._live(task_id)
        return entry.report if entry else None

    def get_pdf(self, task_id: str) -> bytes | None:
        entry = self._live(task_id)
        return entry.pdf if entry else None


class RedisTaskStore(TaskStore):
    """One Redis hash per task, ``<namespace>:task:<task_id>``, expiring ``ttl`` seconds after its last change."""

    def __init__(self, client: Any, *, namespace: str, ttl: int) -> None:
        super().__init__(ttl=ttl)
        self.client = client
        self.namespace = namespace

    @classmethod
    def from_url(cls, url: str, *, namespace: str, ttl: int) -> RedisTaskStore:
        import redis  # Only deployments with Redis need it: the 'redis' extra.

        return cls(redis.Redis.from_url(url), namespace=namespace, ttl=ttl)

    def key(self, task_id: str) -> str:
        return "%s:task:%s" % (self.namespace, task_id)

    def put(self, task: Task, *, report: dict[str, Any] | None = None, pdf: bytes | None = None) -> None:
        fields: dict[str, bytes | str] = {"status": task.status, "error_message": task.error_message or ""}
        if report is not None:
            fields["report"] = json.dumps(report)
        if pdf is not None:
            fields["pdf"] = pdf
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.key(task.task_id), mapping=fields)
            pipe.expire(self.key(task.task_id), self.ttl)
            pipe.execute()

    def get(self, task_id: str) -> Task | None:
        status, error_message = self.client.hmget(self.key(task_id), "status", "error_message")
        if status is None:
            return None
        return Task(task_id, status.decode(), (error_message or b"").decode() or None)

    def get_report(self, task_id: str) -> dict[str, Any] | None:
        report = self.client.hget(self.key(task_id), "report")
        return None if report is None else dict(json.loads(report))

    def get_pdf(self, task_id: str) -> bytes | None:
        pdf: bytes | None = self.client.hget(self.key(task_id), "pdf")
        return pdf

    def close(self) -> None:
        self.client.close()
