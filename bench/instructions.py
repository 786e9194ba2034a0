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
``RedisRecords._send`` in a loop: bench/README.md).

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

from hybiscus_webhooks import settings

from . import apps
from . import middleware as middleware_bench
from .common import Results, Row
from .deliveries import Setup, receiver_host, switches
from .naive import naive_post
from .options import Options
from .services import ROOT, fast_receiver

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
