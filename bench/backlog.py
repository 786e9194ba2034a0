"""3. A backlog of deliveries waiting for their next retry while the receiver is down: worker RSS, Redis memory.

Every delivery really fails once against a closed port and is put back by the Retries middleware,
exactly as in production. The first attempt is counted as the fifth (options["retries"] = 4 when
enqueued), so the next one is 8 minutes away and nothing comes due while the backlog builds up.
Redis is a private redis-server, so INFO memory before and after is ours alone.
"""

from __future__ import annotations

import time
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

from .common import Results, Row, free_port, rss_kib
from .deliveries import Setup
from .options import Options

NAME = "backlog"
RSS_TARGET_MB = 150
BYTES_TARGET = 1500
#: Retries already done when first enqueued: the next attempt is then 30 s * 2**4 = 8 min away.
START_AT_RETRIES = 4


class StartAtRetry(Middleware):
    """Bench only: makes each delivery's first attempt count as a later one, so its retry is far off."""

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        message.options.setdefault("retries", START_AT_RETRIES)


def main(results: Results, options: Options) -> None:
    if "redis" not in options.brokers:
        return
    if not options.redis_private:
        results.note("backlog: Redis is shared (--redis-url); its memory figure includes others' writes")
    run(results, options, label="defaults")
    if options.backlog_prefetch is not None:
        run(results, options, label="dramatiq_delay_queue_prefetch=%d" % options.backlog_prefetch,
            env={"dramatiq_delay_queue_prefetch": str(options.backlog_prefetch)})


def run(results: Results, options: Options, *, label: str, env: dict[str, str] | None = None) -> dict[str, float]:
    count = options.backlog
    down = "http://127.0.0.1:%d/hook" % free_port()  # nothing listens there: every attempt is refused
    with Setup("redis", options) as setup:
        client = setup.broker.client
        dq_hash = "%s:%s.DQ.msgs" % (setup.broker.namespace, setup.queue)
        main_hash = "%s:%s.msgs" % (setup.broker.namespace, setup.queue)
        before = _used_memory(client)
        setup.broker.add_middleware(StartAtRetry())
        setup.send_ours([down], count)
        with setup.worker([setup.queue], env=env) as worker:
            pid = worker.worker_pid()
            deadline = time.monotonic() + 120 + count / 100
            while client.hlen(dq_hash) < count or client.hlen(main_hash):
                if not worker.alive():
                    raise RuntimeError("the worker died:\n" + worker.tail())
                if time.monotonic() > deadline:
                    raise RuntimeError("backlog: %d of %d deliveries waiting after the deadline"
                                       % (client.hlen(dq_hash), count))
                time.sleep(0.5)
            # Let the worker prefetch what it will of the delay queue, then read its memory.
            peak = 0
            for _ in range(10):
                peak = max(peak, rss_kib(pid))
                time.sleep(0.5)
            rss_mb = rss_kib(pid) / 1024
            peak_mb = peak / 1024
            after = _used_memory(client)
            sample = client.hget(dq_hash, next(iter(client.hkeys(dq_hash))))
    per_delivery = (after - before) / count
    results.add(Row(NAME, "worker RSS, %d waiting, %s" % (count, label), "MB", None, rss_mb,
                    rss_mb / RSS_TARGET_MB, "<= 1.0x", note="target %d MB; peak %.0f MB" % (RSS_TARGET_MB, peak_mb)))
    results.add(Row(NAME, "Redis memory per waiting delivery, %s" % label, "B", None, per_delivery,
                    per_delivery / BYTES_TARGET, "<= 1.0x",
                    note="target %d B; one message is %d B encoded" % (BYTES_TARGET, len(sample or b""))))
    return {"rss_mb": rss_mb, "per_delivery": per_delivery}


def _used_memory(client: Any) -> int:
    return int(client.info("memory")["used_memory"])
