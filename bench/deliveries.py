"""One delivery set-up shared by the worker benchmarks: broker, queues, settings, both actors, clean-up."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import dramatiq
import redis

from hybiscus_webhooks import install, report_completed, settings
from hybiscus_webhooks.delivery import COMPLETED, body_of

from .brokers import delete_queues, make_broker
from .options import Options
from .reports import AUTH_HEADER
from .services import Receiver, Worker

REPORT_URL = "https://reports.example.com/api/v1/get-report?task_id={task_id}"

# The switches of a production set-up: signed attempts, sealed messages (one fixed key each; the
# figures do not depend on the key).
SIGNING = {"SIGNING_SECRETS": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]}
SEALED = {"MESSAGE_KEYS": ["m4Qn0S1mQ2x8o5e0bW6V0r7d9KcJ3uYtZp1aL2sHf4E="]}


def switches(options: Options) -> str:
    """What is on, for the notes: signing, records, sealing."""
    return "signing %s, records %s, sealed messages %s" % tuple(
        "on" if on else "off" for on in (options.signing, options.records, options.sealed))


def receiver_host(options: Options) -> str:
    """How the delivery benchmarks address their receiver on loopback: by the name localhost with
    ``--by-name`` (which our sender resolves and vets as it would a customer's host name, and the naive
    actor's urllib3 resolves when it opens a connection), else by the literal 127.0.0.1."""
    return "localhost" if options.by_name else "127.0.0.1"


class Setup:
    """Queues of our own on one broker, the library configured for them, and a way to start workers."""

    def __init__(self, kind: str, options: Options, *, extra_settings: dict[str, Any] | None = None) -> None:
        tag = uuid.uuid4().hex[:10]
        self.queue = "hwbench_%s" % tag
        self.naive_queue = "hwbench_%s_naive" % tag
        self.options = options
        # The receivers are on loopback, which the SSRF guard refuses unless told otherwise.
        names: dict[str, Any] = {"REPORT_URL": REPORT_URL, "QUEUE_NAME": self.queue, "ALLOW_PRIVATE_DESTINATIONS": True}
        if options.signing:
            names.update(SIGNING)
        if options.sealed:
            names.update(SEALED)
        # Records go to the run's Redis, under a prefix of this run that close() deletes; off, they are off
        # even on a RedisBroker (which would record by default).
        self.records_prefix = "hwbench-%s:records:" % tag
        names["RECORDS_REDIS_URL"] = options.redis_url if options.records else False
        names["RECORDS_KEY_PREFIX"] = self.records_prefix
        names.update(options.settings)
        names.update(extra_settings or {})
        self.config: dict[str, Any] = {
            "broker": kind, "url": options.redis_url if kind == "redis" else None,
            "namespace": "hwbench-%s" % tag, "naive_queue": self.naive_queue, "settings": names,
        }
        settings.configure(**names)
        self.broker = make_broker(self.config)
        self.broker.emit_after("process_boot")
        self.actor = install(self.broker)
        self.naive = dramatiq.actor(actor_name="bench_naive_post", queue_name=self.naive_queue, max_retries=0,
                                    broker=self.broker)(_never_called)

    def worker(self, queues: list[str], *, env: dict[str, str] | None = None, verbose: bool = False,
               prefix: list[str] | None = None) -> Worker:
        if self.options.pin_worker is not None:
            # The whole command, and so the worker process it forks, on one CPU.
            prefix = ["taskset", "-c", str(self.options.pin_worker), *(prefix or [])]
        return Worker(self.config, queues=queues, threads=self.options.threads, env=env, verbose=verbose,
                      prefix=prefix)

    def send(self, variant: str, url: str, count: int) -> str:
        """Enqueue ``count`` deliveries of ``variant`` ("ours" or "naive") to ``url``; return their queue."""
        if variant == "ours":
            self.send_ours([url], count)
            return self.queue
        self.send_naive([url], count)
        return self.naive_queue

    def send_ours(self, urls: list[str], count: int) -> float:
        """Enqueue ``count`` deliveries through the post-render hook, one webhook per report; seconds taken."""
        started = time.perf_counter()
        for index in range(count):
            url = urls[index % len(urls)]
            report_completed("task-%d" % index, {"config": {"webhooks": [{"url": url, "auth_header": AUTH_HEADER}]}},
                             broker=self.broker)
        return time.perf_counter() - started

    def send_naive(self, urls: list[str], count: int) -> float:
        """Enqueue ``count`` naive POSTs of the same body; seconds taken."""
        started = time.perf_counter()
        for index in range(count):
            task_id = "task-%d" % index
            body = body_of(COMPLETED, task_id, REPORT_URL.format(task_id=task_id)).decode()
            self.naive.send(urls[index % len(urls)], body, AUTH_HEADER)
        return time.perf_counter() - started

    def close(self) -> None:
        try:
            delete_queues(self.broker, [self.queue, self.naive_queue])
            if self.options.records and self.options.redis_url:
                client = redis.Redis.from_url(self.options.redis_url)
                for key in client.scan_iter(match=self.records_prefix + "*", count=1000):
                    client.delete(key)
                client.close()
        finally:
            self.broker.close()
            settings.reload()

    def __enter__(self) -> Setup:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def _never_called(url: str, body: str, auth_header: str | None) -> None:
    raise AssertionError("the naive actor runs in the worker, not here")


def drain(worker: Worker, receiver: Receiver, count: int, *, timeout: float,
          progress: Callable[[], int] | None = None) -> list[tuple[float, int]]:
    """Wait until ``receiver`` has ``count`` hits (or ``timeout`` passes); return the hits."""
    counter = progress or receiver.count
    deadline = time.monotonic() + timeout
    while counter() < count:
        if not worker.alive():
            raise RuntimeError("the worker died:\n" + worker.tail())
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return receiver.hits()


def rate(hits: list[tuple[float, int]], *, until: float | None = None) -> float:
    """Hits per second from the first to the last hit (or to ``until``, when the run was cut short)."""
    if len(hits) < 2:
        return 0.0
    times = sorted(at for at, _ in hits)
    end = until if until is not None else times[-1]
    return (len(times) - 1) / max(end - times[0], 1e-6)


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
