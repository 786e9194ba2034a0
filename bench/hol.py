"""4. Head-of-line blocking: 10% of the endpoints hang until the read timeout.

Healthy deliveries per second with a tenth of all deliveries going to endpoints that accept and never
answer, against a run with none hanging. READ_TIMEOUT is 2 s here (15 s by default), so that a run
takes seconds, not minutes; the effect scales with it.
"""

from __future__ import annotations

import time

from hybiscus_webhooks import settings

from .common import Results, Row
from .deliveries import Setup, drain, rate
from .options import Options
from .services import HangServer, Nginx, Receiver, fast_receiver

NAME = "hol"
HEALTHY_HOSTS = 9
HANGING_HOSTS = 10
#: The setting that turns the slow-destination limit off, when the library has one.
LIMIT_SETTING = "SLOW_DESTINATION_SLOTS"


def main(results: Results, options: Options) -> None:
    kind = options.brokers[0]
    receiver = fast_receiver(HEALTHY_HOSTS)
    with receiver, HangServer(HANGING_HOSTS) as hang:
        if not isinstance(receiver, Nginx):
            results.note("hol: the receiver is the Python fallback, not nginx")
        healthy = ["%s/hook/%d" % (url, path) for url in _urls(receiver) for path in range(10)]
        hanging = hang.urls()
        baseline, seconds = run(options, kind, receiver, healthy, [], cap=None)
        cap = max(options.hol_min_seconds, 3 * seconds)
        has_limit = LIMIT_SETTING in settings.DEFINITIONS
        if has_limit:
            before, _ = run(options, kind, receiver, healthy, hanging, cap=cap, extra={LIMIT_SETTING: None})
            _row(results, options, kind, baseline, before, "without the slow-destination limit")
            after, _ = run(options, kind, receiver, healthy, hanging, cap=cap)
            _row(results, options, kind, baseline, after, "with the slow-destination limit (defaults)")
        else:
            before, _ = run(options, kind, receiver, healthy, hanging, cap=cap)
            _row(results, options, kind, baseline, before, "")


def _row(results: Results, options: Options, kind: str, baseline: float, measured: float, label: str) -> None:
    results.add(Row(NAME, "%s, 10%% of endpoints hang, %s" % (kind, label), "/s", baseline, measured,
                    measured / baseline, ">= 0.8x",
                    note="healthy deliveries/s; READ_TIMEOUT %g s; %d threads" % (options.hol_read_timeout,
                                                                                  options.threads)))


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
