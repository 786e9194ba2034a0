"""4. Head-of-line blocking: 10% of the endpoints hang until the read timeout.

Healthy deliveries per second with a tenth of all deliveries going to endpoints that accept and never
answer, against a run with none hanging. READ_TIMEOUT is 2 s here (15 s by default), so that a run
takes seconds, not minutes; the effect scales with it. The two runs alternate for ``rounds`` rounds (ABBA),
and the figure is the median of the rounds' ratios: one pair's ratio moves by 0.2x on a busy machine.

Then a warm-up, what the limit costs when nothing hangs: a worker whose destinations are all new to it
(as after a restart), each answering after a delay, with the limit on against off. A delivery to a
destination that has not answered yet may wait for a thread; the worker's DEBUG log counts the waits
that sent a delivery back to the queue.
"""

from __future__ import annotations

import time

from hybiscus_webhooks import settings

from .common import Results, Row, abba, median, median_ratio, per_round
from .deliveries import Setup, drain, rate
from .options import Options
from .services import HangServer, Nginx, PythonReceiver, Receiver, fast_receiver

NAME = "hol"
HEALTHY_HOSTS = 9
HANGING_HOSTS = 10
#: The setting that turns the slow-destination limit off, when the library has one.
LIMIT_SETTING = "SLOW_DESTINATION_SLOTS"
#: In the worker's DEBUG line of a delivery put back on the queue for a destination not marked slow.
DEFERRAL = "for a turn at"


def main(results: Results, options: Options) -> None:
    kind = options.brokers[0]
    receiver = fast_receiver(HEALTHY_HOSTS)
    with receiver, HangServer(HANGING_HOSTS) as hang:
        if not isinstance(receiver, Nginx):
            results.note("hol: the receiver is the Python fallback, not nginx")
        healthy = ["%s/hook/%d" % (url, path) for url in _urls(receiver) for path in range(10)]
        hanging = hang.urls()
        has_limit = LIMIT_SETTING in settings.DEFINITIONS

        def measure(variant: str, extra: dict[str, object] | None = None) -> tuple[float, float]:
            if variant == "healthy":
                return run(options, kind, receiver, healthy, [], cap=None)
            return run(options, kind, receiver, healthy, hanging, cap=cap, extra=extra)

        # Round 1's healthy run comes first: every run with hanging endpoints is cut at the same time, set by it.
        first, seconds = measure("healthy")
        cap = max(options.hol_min_seconds, 3 * seconds)
        if has_limit:
            # The limit off, once: far below the target, it needs no rounds.
            before, _ = measure("hanging", extra={LIMIT_SETTING: None})
            _row(results, options, kind, first, before, before / first, "without the slow-destination limit")
        rates = {"healthy": [first], "hanging": [measure("hanging")[0]]}
        for round_number in range(1, options.rounds):
            for variant in abba(round_number, "healthy", "hanging"):
                rates[variant].append(measure(variant)[0])
        ratio = median_ratio(rates["healthy"], rates["hanging"])
        _row(results, options, kind, median(rates["healthy"]), median(rates["hanging"]), ratio,
             "with the slow-destination limit (defaults)" if has_limit else "",
             rounds="; median of %d rounds' ratios (healthy %s, hanging %s /s)" % (
                 options.rounds, per_round(rates["healthy"]), per_round(rates["hanging"])))
    if has_limit:
        warm_up(results, options, kind)


def _row(results: Results, options: Options, kind: str, baseline: float, measured: float, ratio: float,
         label: str, *, rounds: str = "") -> None:
    results.add(Row(NAME, "%s, 10%% of endpoints hang, %s" % (kind, label), "/s", baseline, measured,
                    ratio, ">= 0.8x",
                    note="healthy deliveries/s; READ_TIMEOUT %g s; %d threads%s" % (options.hol_read_timeout,
                                                                                    options.threads, rounds)))


def warm_up(results: Results, options: Options, kind: str) -> None:
    with PythonReceiver(options.warmup_destinations, delay=options.warmup_latency) as receiver:
        urls = ["%s/hook" % url for url in _urls(receiver)]
        off, _ = _warm_up_run(options, kind, receiver, urls, {LIMIT_SETTING: None})
        on, deferrals = _warm_up_run(options, kind, receiver, urls, {})
    results.add(Row(NAME, "%s, warm-up, %d destinations all new, each answering in %g s: limit on against off"
                    % (kind, options.warmup_destinations, options.warmup_latency), "/s", off, on, on / off,
                    note="deliveries/s; %d deliveries, %d of them put back on the queue with the limit on; %d threads"
                    % (options.warmup_deliveries, deferrals, options.threads)))


def _warm_up_run(options: Options, kind: str, receiver: Receiver, urls: list[str],
                 extra: dict[str, object]) -> tuple[float, int]:
    """Deliveries per second, and how many deliveries went back on the queue for a turn."""
    count = options.warmup_deliveries
    with Setup(kind, options, extra_settings=extra) as setup:
        receiver.reset()
        setup.send_ours(urls, count)
        with setup.worker([setup.queue], verbose=True) as worker:
            hits = drain(worker, receiver, count, timeout=60 + 2 * count * options.warmup_latency)
            deferrals = worker.count_lines(DEFERRAL)
    if len(hits) < count:
        raise RuntimeError("hol warm-up: %d of %d deliveries arrived" % (len(hits), count))
    return rate(hits), deferrals


def _urls(receiver: Receiver) -> list[str]:
    return ["http://127.0.0.1:%d" % port for port in receiver.ports]


def run(options: Options, kind: str, receiver: Receiver, healthy: list[str], hanging: list[str], *,
        cap: float | None, extra: dict[str, object] | None = None) -> tuple[float, float]:
    """Healthy deliveries per second, and the seconds the run took."""
    count = options.hol_deliveries
    # Every tenth delivery goes to a hanging endpoint, round robin over them.
    urls = []
    for index in range(count + (count // 9 if hanging else 0)):
        if hanging and index % 10 == 9:
            urls.append(hanging[(index // 10) % len(hanging)])
        else:
            urls.append(healthy[index % len(healthy)])
    with Setup(kind, options, extra_settings={"READ_TIMEOUT": options.hol_read_timeout, **(extra or {})}) as setup:
        receiver.reset()
        setup.send_ours(urls, len(urls))
        with setup.worker([setup.queue]) as worker:
            started = time.time()
            hits = drain(worker, receiver, count, timeout=cap if cap is not None else 60 + count / 20)
            ended = time.time()
    if cap is None and len(hits) < count:
        raise RuntimeError("hol: %d of %d healthy deliveries arrived" % (len(hits), count))
    # A run cut short is measured up to the cut, not to its last hit.
    measured = rate(hits, until=None if len(hits) >= count else ended)
    return measured, ended - started
