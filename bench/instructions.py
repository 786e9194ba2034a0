"""6. Instructions per delivery, counted by valgrind's callgrind: our actor against the naive POST; and
per submission, the middleware against the bare app.

The throughput benchmark times a worker on a shared machine, where one run of a variant moves by
10-15% and a change worth 1% cannot be seen. An instruction count moves by well under 1% from run
to run, whatever else the machine does: it is the figure to judge a small change of the delivery
path by, before the throughput benchmark judges the sum.

Each variant runs in a process of its own under callgrind, on a StubBroker, against nginx: the
messages are made by the post-render hook (ours) or by a bare send (naive), then each is handled
as a worker thread would, with the broker's middleware before and after the actor's function.
Only the second half of the messages is counted, in the calling thread, from one call of
``sys.call_tracing`` (the toggle that callgrind collects under): the first half warms the caches and
the connections, and imports are not counted. The records writer's thread is not counted: a few
script calls a second, but about 34k instructions for each write it packs (counted apart, with
``RedisRecords._send`` in a loop: bench/README.md). Nor are the broker's consumer, the acks and
the other threads: the worker's rows count those.

A row per broker counts the worker process as a whole, every thread from its start to its exit (see
``worker_row``): the ``dramatiq`` command under callgrind, two runs of each variant.

The middleware's row counts in-process ASGI calls of the middleware benchmark's app, the 2 KB
submission with 3 webhooks that the process has seen before, with and without the middleware, in
the same way: half the calls warm up, the other half are counted.

``python -m bench.instructions --loop VARIANT COUNT URL OPTIONS`` is the process callgrind runs.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import dramatiq
from dramatiq.broker import MessageProxy

from hybiscus_webhooks import records, settings

from . import apps
from . import middleware as middleware_bench
from .common import Results, Row
from .deliveries import Setup, drain, receiver_host, switches
from .naive import naive_post
from .options import Options
from .services import ROOT, Receiver, fast_receiver

NAME = "instructions"
# What callgrind prints at the end: "Collected : 123456".
_COLLECTED = re.compile(r"Collected : (\d+)")


def main(results: Results, options: Options) -> None:
    if not shutil.which("valgrind"):
        results.note("instructions: valgrind is not installed (Debian: apt-get install valgrind); skipped")
        return
    count = max(options.deliveries // 40, 4)
    host = receiver_host(options)
    with fast_receiver() as receiver:
        url = receiver.url.replace("127.0.0.1", host, 1)
        counted = {variant: count_instructions(variant, count, url, options) for variant in ("naive", "ours")}
    naive, ours = (counted[variant] / count for variant in ("naive", "ours"))
    results.add(Row(NAME, "per delivery (%d counted, 1 thread, StubBroker)" % count, "k instr",
                    naive / 1000, ours / 1000, ours / naive,
                    note="lower is better; %s; to %s" % (switches(options), host)))
    calls = max(options.requests // 10, 4)
    bare, ours = (count_instructions(_APP + variant, calls, "-", options) / calls for variant in ("bare", "middleware"))
    results.add(Row(NAME, "per submission, 2 KB, 3 webhooks (%d counted, in process)" % calls, "k instr", bare / 1000,
                    ours / 1000, ours / bare, note="lower is better; in-process ASGI calls; bare app against "
                    "WebhooksMiddleware, its route taking request.state.report"))
    # The whole worker takes minutes under callgrind: with --quick, on one broker only.
    for kind in options.brokers[:1] if options.quick else options.brokers:
        worker_row(results, options, kind)


def worker_row(results: Results, options: Options, kind: str) -> None:
    """Every thread of the worker process, per delivery: what the row of one thread leaves out.

    The ``dramatiq`` command runs under callgrind twice for each variant, for ``small`` and for
    ``small + count`` deliveries; the difference of the two counts, over ``count``, is what one more
    delivery costs the worker process: the broker's consumer and acks, the middleware, the delivery,
    whatever other threads do. Start-up and shutdown are the same in both runs, and cancel out.
    The records writer sends what arrives within ``LINGER_SECONDS`` (50 ms): under callgrind, some
    50 times slower, it waits 50 times longer, so that its batches hold about as many writes as at speed.
    """
    count = max(options.deliveries // 20, 10)
    small = max(count // 4, 2)
    host = receiver_host(options)
    per_delivery = {}
    with fast_receiver() as receiver, Setup(kind, options) as setup:
        setup.config["records_linger"] = records.LINGER_SECONDS * _CALLGRIND_SLOWDOWN  # Read by bench.workerapp.
        base = receiver.url.replace("127.0.0.1", host, 1)
        for variant in ("naive", "ours"):
            more, fewer = (count_worker(setup, variant, number, base, receiver) for number in (small + count, small))
            per_delivery[variant] = (more - fewer) / count
    naive, ours = per_delivery["naive"], per_delivery["ours"]
    results.add(Row(NAME, "worker process, every thread, per delivery (%s, %d counted)" % (kind, count), "k instr",
                    naive / 1000, ours / 1000, ours / naive,
                    note="lower is better; the dramatiq worker under callgrind, %d deliveries less %d; %s; to %s"
                    % (small + count, small, switches(options), host)))


def count_worker(setup: Setup, variant: str, count: int, url: str, receiver: Receiver) -> int:
    """Instructions of a worker process that delivers ``count`` messages of ``variant``, from its start to its exit."""
    with tempfile.TemporaryDirectory(prefix="hw-bench-callgrind-") as tmp:
        receiver.reset()
        queue = setup.send(variant, "%s/%s" % (url, variant), count)
        # The dramatiq command forks its worker process, which callgrind follows: a file for each, by pid.
        prefix = ["valgrind", "--tool=callgrind", "--callgrind-out-file=%s" % Path(tmp, "callgrind.out.%p"),
                  "--log-file=%s" % Path(tmp, "callgrind.log.%p")]
        with setup.worker([queue], env={"PYTHONHASHSEED": "0"}, prefix=prefix) as worker:
            hits = drain(worker, receiver, count, timeout=120 + count)
            if len(hits) < count:
                raise RuntimeError("%s on %s under callgrind: %d of %d deliveries arrived"
                                   % (variant, setup.config["broker"], len(hits), count))
            # callgrind writes its count as a process exits: let the worker shut down, however slowly.
            worker.stop(timeout=600)
            parent = worker.process.pid
        found = {int(log.name.rsplit(".", 1)[1]): _collected(log) for log in Path(tmp).glob("callgrind.log.*")}
        workers = [instructions for pid, instructions in found.items() if pid != parent]
        if len(workers) != 1:
            raise RuntimeError("expected one worker process under callgrind, found %d" % len(workers))
        return workers[0]


# About how many times slower a worker runs under callgrind than at speed.
_CALLGRIND_SLOWDOWN = 50
# The prefix of the middleware's variants: the delivery's are "ours" and "naive", and so is one of the apps.
_APP = "app:"


def count_instructions(variant: str, count: int, url: str, options: Options) -> int:
    """Instructions of ``count`` deliveries of ``variant`` after as many uncounted ones."""
    with tempfile.TemporaryDirectory(prefix="hw-bench-callgrind-") as tmp:
        log = Path(tmp) / "callgrind.log"
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=sys_call_tracing*",
             "--callgrind-out-file=%s" % (Path(tmp) / "callgrind.out"), "--log-file=%s" % log,
             sys.executable, "-m", "bench.instructions", "--loop", variant, str(count), url,
             json.dumps(dataclasses.asdict(options))],
            # The same string hashes in every run: dict and set probes then take the same paths.
            cwd=ROOT, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        return _collected(log)


def _collected(log: Path) -> int:
    """The count in callgrind's log."""
    found = _COLLECTED.search(log.read_text())
    if found is None:
        raise RuntimeError("callgrind printed no count:\n" + log.read_text()[-2000:])
    return int(found.group(1))


def loop(variant: str, count: int, url: str, options: Options) -> None:
    """Handle ``2 * count`` messages of ``variant``; the second ``count`` under ``sys.call_tracing``."""
    if variant.startswith(_APP):
        _submissions(variant[len(_APP):], count)
        return
    with Setup("stub", options) as setup:
        if variant == "ours":
            setup.send_ours([url + "/ours"], 2 * count)
            queue, actor = setup.queue, setup.actor.fn
        else:
            setup.send_naive([url + "/naive"], 2 * count)
            values = settings.get()
            queue, actor = setup.naive_queue, naive_post(values.CONNECT_TIMEOUT, values.READ_TIMEOUT)
        pending = setup.broker.queues[queue]
        # What a worker thread handles: a proxy, which the middleware mark as failed or not.
        messages = [MessageProxy(dramatiq.Message.decode(pending.get_nowait())) for _ in range(2 * count)]

        def handle(batch: list[MessageProxy]) -> None:
            for message in batch:
                setup.broker.emit_before("process_message", message)
                result = actor(*message.args, **message.kwargs)
                setup.broker.emit_after("process_message", message, result=result)

        handle(messages[:count])
        sys.call_tracing(handle, (messages[count:],))


def _submissions(variant: str, count: int) -> None:
    """Call the middleware benchmark's app ``2 * count`` times; the second ``count`` under ``sys.call_tracing``."""
    app = apps.make_app(variant)
    # The middleware benchmark's first case, 2 KB with 3 webhooks, built here rather than at import:
    # its list of cases holds a 200 KB body too, which every process of this benchmark would build.
    submission = middleware_bench.cases(sizes=(2_000,))[0]

    async def calls(number: int) -> None:
        for _ in range(number):
            status = await middleware_bench._call(app, submission)
            if status != 200:
                raise RuntimeError("%s answered %d" % (variant, status))

    runner = asyncio.new_event_loop()
    runner.run_until_complete(calls(count))
    sys.call_tracing(runner.run_until_complete, (calls(count),))
    runner.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.instructions")
    parser.add_argument("--loop", nargs=4, metavar=("VARIANT", "COUNT", "URL", "OPTIONS"), required=True)
    variant, count, url, shared = parser.parse_args().loop
    loop(variant, int(count), url, Options(**json.loads(shared)))
