"""2. Deliveries per second of one worker process (8 threads) to nginx: our actor against a naive urllib3 POST."""

from __future__ import annotations

from .common import Results, Row, abba, cpu_seconds, median, median_ratio, per_round, pids_named, tree_cpu_seconds
from .deliveries import Setup, drain, rate, receiver_host, switches
from .options import Options
from .services import Receiver, fast_receiver

NAME = "throughput"


def main(results: Results, options: Options) -> None:
    results.note("throughput: %s; receiver addressed as %s" % (switches(options), receiver_host(options)))
    with fast_receiver() as receiver:
        if receiver.kind != "nginx":
            results.note("throughput: the receiver is the Python fallback, not nginx")
        for kind in options.brokers:
            run(results, options, kind, receiver)


def run(results: Results, options: Options, kind: str, receiver: Receiver) -> None:
    count = options.deliveries
    rates: dict[str, list[float]] = {"naive": [], "ours": []}
    cpu: dict[str, list[float]] = {"naive": [], "ours": []}
    # The same window's CPU time of the other processes each delivery keeps busy, by part.
    parts = services(kind, options, receiver)
    shares: dict[str, dict[str, list[float]]] = {variant: {part: [] for part in parts} for variant in cpu}
    failed = 0
    base = receiver.url.replace("127.0.0.1", receiver_host(options), 1)
    with Setup(kind, options) as setup:
        for round_number in range(options.rounds):
            for variant in abba(round_number, "naive", "ours"):
                receiver.reset()
                queue = setup.send(variant, "%s/%s" % (base, variant), count)
                with setup.worker([queue]) as worker:
                    pid = worker.worker_pid()
                    # The worker's CPU time from 5% to 95% of the deliveries: what one delivery costs the
                    # worker, whatever the other processes on the machine take from it.
                    marks = []
                    for share in (0.05, 0.95):
                        drain(worker, receiver, int(count * share), timeout=60 + count / 20)
                        marks.append((receiver.count(), cpu_seconds(pid),
                                      {part: tree_cpu_seconds(pids) for part, pids in parts.items()}))
                    hits = drain(worker, receiver, count, timeout=60 + count / 20)
                    (first, started, before), (last, ended, after) = marks
                    cpu[variant].append((ended - started) / max(last - first, 1))
                    for part in parts:
                        shares[variant][part].append((after[part] - before[part]) / max(last - first, 1))
                    failed += worker.count_lines("failed") if variant == "ours" else 0
                if len(hits) < count:
                    raise RuntimeError("%s on %s: %d of %d deliveries arrived" % (variant, kind, len(hits), count))
                rates[variant].append(rate(hits))
    naive, ours = median(rates["naive"]), median(rates["ours"])
    # Each round measured both, back to back: the ratio is the median of the rounds' ratios.
    ratio = median_ratio(rates["naive"], rates["ours"])
    results.add(Row(NAME, "%s, %d deliveries, 1 process x %d threads" % (kind, count, options.threads), "/s",
                    naive, ours, ratio, ">= 0.95x",
                    note="rounds: naive %s, ours %s" % (per_round(rates["naive"]), per_round(rates["ours"]))))
    results.add(Row(NAME, "%s, worker CPU per delivery" % kind, "us", median(cpu["naive"]) * 1e6,
                    median(cpu["ours"]) * 1e6, median_ratio(cpu["naive"], cpu["ours"]),
                    note="lower is better; failed attempts in our runs: %d" % failed))
    # Worker and services together: on 2 cores they share the machine, so a delivery that costs the
    # broker or Redis more leaves the worker less, even when the worker's own share is the same.
    totals = {variant: [sum(run) for run in zip(cpu[variant], *shares[variant].values())] for variant in cpu}
    split = ", ".join("%s %.0f/%.0f" % (part, median(shares["naive"][part]) * 1e6,
                                         median(shares["ours"][part]) * 1e6) for part in parts)
    results.add(Row(NAME, "%s, CPU per delivery, worker and services" % kind, "us",
                    median(totals["naive"]) * 1e6, median(totals["ours"]) * 1e6,
                    median_ratio(totals["naive"], totals["ours"]),
                    note="lower is better; the services' part, naive/ours us: %s" % split))


def services(kind: str, options: Options, receiver: Receiver) -> dict[str, list[int]]:
    """The processes besides the worker that a delivery keeps busy, by what they do for it.

    RabbitMQ's ``beam.smp`` (however many nodes run here), the run's private Redis (the broker's queues
    on Redis, records with ``--records``), and the receiver. A Redis named by ``--redis-url`` is left
    out: its process may not be on this machine.
    """
    parts: dict[str, list[int]] = {}
    if kind == "rabbitmq":
        parts["RabbitMQ"] = pids_named("beam.smp")
    if options.redis_pid is not None and (kind == "redis" or options.records):
        parts["Redis"] = [options.redis_pid]
    parts["receiver"] = [receiver.process.pid]
    return parts
