"""5. What the post-render hook costs per webhook to enqueue, against a bare ``actor.send`` of the same body."""

from __future__ import annotations

import time
from collections.abc import Callable

from hybiscus_webhooks import report_completed
from hybiscus_webhooks.delivery import COMPLETED, body_of

from . import reports
from .common import Results, Row
from .deliveries import REPORT_URL, Setup
from .options import Options

NAME = "enqueue"


def main(results: Results, options: Options) -> None:
    for kind in ["stub", *options.brokers]:
        run(results, options, kind)


def run(results: Results, options: Options, kind: str) -> None:
    calls = options.enqueue_calls
    with Setup(kind, options) as setup:
        one = reports.report(2_000, webhooks=reports.hook_urls(1))
        three = reports.report(2_000, webhooks=reports.hook_urls(3))
        url = one["config"]["webhooks"][0]["url"]

        def bare() -> None:
            body = body_of(COMPLETED, "task-1", REPORT_URL.format(task_id="task-1")).decode()
            setup.naive.send(url, body, reports.AUTH_HEADER)

        def hook_one() -> None:
            report_completed("task-1", one, broker=setup.broker)

        def hook_three() -> None:
            report_completed("task-1", three, broker=setup.broker)

        timings = _interleaved({"bare": bare, "one": hook_one, "three": hook_three}, calls=calls,
                               rounds=max(5, 3 * options.rounds), between=lambda: _flush(setup))
    per_webhook_three = timings["three"] / 3
    results.add(Row(NAME, "%s: report_completed, 1 webhook" % kind, "us", timings["bare"] * 1e6,
                    timings["one"] * 1e6, timings["one"] / timings["bare"], note="per webhook vs a bare send"))
    results.add(Row(NAME, "%s: report_completed, 3 webhooks, per webhook" % kind, "us", timings["bare"] * 1e6,
                    per_webhook_three * 1e6, per_webhook_three / timings["bare"]))


def _interleaved(variants: dict[str, Callable[[], None]], *, calls: int, rounds: int,
                 between: Callable[[], None]) -> dict[str, float]:
    """Seconds per call of each variant: the least of its rounds, interleaved round by round."""
    timings: dict[str, list[float]] = {name: [] for name in variants}
    for function in variants.values():  # warm up
        function()
    for round_number in range(rounds):
        names = list(variants)
        names = names[round_number % len(names):] + names[:round_number % len(names)]
        for name in names:
            started = time.perf_counter()
            for _ in range(calls):
                variants[name]()
            timings[name].append((time.perf_counter() - started) / calls)
            between()
    # The least round: what other work on the machine adds is left out (wall time, as the broker's
    # own work happens in another process).
    return {name: min(values) for name, values in timings.items()}


def _flush(setup: Setup) -> None:
    # Keep queues short between rounds, so that every round measures the same thing.
    for queue in (setup.queue, setup.naive_queue):
        setup.broker.flush(queue)
