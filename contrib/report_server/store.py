"""Where tasks and their PDFs live: Redis with a TTL for real deployments, memory for one process."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
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
    """Each ``put`` keeps the task (and its PDF, once built) for ``ttl`` seconds from then."""

    def __init__(self, *, ttl: int) -> None:
        self.ttl = ttl

    @abstractmethod
    def put(self, task: Task, pdf: bytes | None = None) -> None: ...

    @abstractmethod
    def get(self, task_id: str) -> Task | None: ...

    @abstractmethod
    def get_pdf(self, task_id: str) -> bytes | None: ...

    def close(self) -> None:  # noqa: B027 - a store without connections has nothing to close
        """Release connections."""


class MemoryTaskStore(TaskStore):
    """Good for one process only: the embedded demo and unit tests."""

    def __init__(self, *, ttl: int, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(ttl=ttl)
        self.clock = clock
        self._lock = threading.Lock()
        self._tasks: dict[str, tuple[float, Task, bytes | None]] = {}

    def put(self, task: Task, pdf: bytes | None = None) -> None:
        now = self.clock()
        with self._lock:
            # Dropping what expired on every write keeps a long-running demo's memory bounded.
            for task_id in [key for key, (until, _, _) in self._tasks.items() if until <= now]:
                del self._tasks[task_id]
            self._tasks[task.task_id] = (now + self.ttl, task, pdf)

    def _live(self, task_id: str) -> tuple[float, Task, bytes | None] | None:
        with self._lock:
            entry = self._tasks.get(task_id)
        return entry if entry is not None and entry[0] > self.clock() else None

    def get(self, task_id: str) -> Task | None:
        entry = self._live(task_id)
        return entry[1] if entry else None

    def get_pdf(self, task_id: str) -> bytes | None:
        entry = self._live(task_id)
        return entry[2] if entry else None


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

    def put(self, task: Task, pdf: bytes | None = None) -> None:
        fields: dict[str, bytes | str] = {"status": task.status, "error_message": task.error_message or ""}
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

    def get_pdf(self, task_id: str) -> bytes | None:
        pdf: bytes | None = self.client.hget(self.key(task_id), "pdf")
        return pdf

    def close(self) -> None:
        self.client.close()
