"""``python -m bench [NAME ...] [options]``: run the benchmarks and print every figure and ratio.

NAME is one or more of: middleware, throughput, backlog, hol, enqueue, instructions (all when none is given).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

from .common import HEADER, Results, format_row, machine
from .options import Options

BENCHMARKS = ("middleware", "throughput", "backlog", "hol", "enqueue", "instructions")


def parse(argv: list[str]) -> tuple[list[str], Options]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="tiny counts: proves the code paths, measures nothing")
    parser.add_argument("--brokers", default="redis,rabbitmq", help="comma-separated: redis, rabbitmq")
    parser.add_argument("--redis-url", help="a Redis to use instead of a private redis-server (memory figures "
                        "then include whatever else that server holds)")
    parser.add_argument("--rounds", type=int, help="alternating rounds per comparison")
    parser.add_argument("--requests", type=int, help="middleware: in-process calls per round (2 KB and GET)")
    parser.add_argument("--duration", type=float, help="middleware: seconds of wrk per round")
    parser.add_argument("--deliveries", type=int, help="throughput: deliveries per run (default 20000)")
    parser.add_argument("--backlog", type=int, help="backlog: waiting deliveries (default 100000)")
    parser.add_argument("--backlog-prefetch", type=int, help="backlog: also measure with the worker's "
                        "dramatiq_delay_queue_prefetch set to this")
    parser.add_argument("--hol-deliveries", type=int, help="hol: healthy deliveries per run (default 10000)")
    parser.add_argument("--enqueue-calls", type=int, help="enqueue: calls per round")
    parser.add_argument("--threads", type=int, default=8, help="worker threads (default 8)")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                        help="a library setting for the worker, VALUE a Python literal; repeatable")
    parser.add_argument("--signing", action="store_true", help="sign every attempt (SIGNING_SECRETS)")
    parser.add_argument("--records", action="store_true",
                        help="record deliveries in the run's Redis (RECORDS_REDIS_URL); off by default, even on Redis")
    parser.add_argument("--sealed", action="store_true", help="seal delivery messages (MESSAGE_KEYS)")
    parser.add_argument("--production", action="store_true", help="all three: --signing --records --sealed")
    parser.add_argument("--by-name", action="store_true",
                        help="throughput: send to http://localhost:PORT, a host name that each actor resolves as it "
                        "would a customer's, rather than to http://127.0.0.1:PORT")
    parser.add_argument("--pin-worker", type=int, metavar="CPU",
                        help="run each benchmark worker on this CPU alone (taskset -c), its 8 threads never moving "
                        "between CPUs; the broker, Redis and nginx are left to the others")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error("unknown benchmark %s; choose from %s" % (", ".join(unknown), ", ".join(BENCHMARKS)))
    settings: dict[str, Any] = {}
    for item in args.setting:
        name, _, value = item.partition("=")
        try:
            settings[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parser.error("--setting %s: the value must be a Python literal, e.g. %s=5.0 or %s='\"text\"'"
                         % (name, name, name))
    options = Options.defaults(quick=args.quick)
    for name in ("rounds", "requests", "duration", "deliveries", "backlog", "backlog_prefetch", "hol_deliveries",
                 "enqueue_calls"):
        value = getattr(args, name)
        if value is not None:
            setattr(options, name, value)
    options.brokers = [name for name in args.brokers.split(",") if name]
    options.redis_url = args.redis_url
    options.threads = args.threads
    options.settings = settings
    options.signing = args.signing or args.production
    options.records = args.records or args.production
    options.sealed = args.sealed or args.production
    options.by_name = args.by_name
    if args.pin_worker is not None:
        if args.pin_worker not in os.sched_getaffinity(0):
            parser.error("--pin-worker %d: this process may run on CPUs %s only"
                         % (args.pin_worker, sorted(os.sched_getaffinity(0))))
        if not shutil.which("taskset"):
            parser.error("--pin-worker needs taskset (Debian: util-linux)")
    options.pin_worker = args.pin_worker
    return list(args.names or BENCHMARKS), options


@contextlib.contextmanager
def redis_for(options: Options) -> Iterator[None]:
    """A private redis-server for the run, unless --redis-url names one."""
    if options.redis_url or ("redis" not in options.brokers and not options.records):
        yield
        return
    if not shutil.which("redis-server"):
        # The shared server then: our keys live under a namespace of their own and are deleted after.
        options.redis_url = "redis://127.0.0.1:6379/0"
        yield
        return
    from .services import PrivateRedis

    with PrivateRedis() as redis:
        options.redis_url = redis.url
        options.redis_private = True
        options.redis_pid = redis.process.pid
        yield


def run(names: list[str], options: Options) -> Results:
    """Run the benchmarks ``names``, printing each row as it is measured."""
    for line in machine():
        print(line)
    print("counts: %s" % options.describe())
    results = Results()
    with redis_for(options):
        print("redis: %s" % ("a private redis-server at " + str(options.redis_url) if options.redis_private
                             else options.redis_url))
        print()
        print(HEADER)
        for name in names:
            module = importlib.import_module("bench." + name)
            module.main(results, options)
    return results


def _exit_on_term(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds the with blocks, which stop every child process


def main(argv: list[str] | None = None) -> int:
    names, options = parse(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _exit_on_term)
    started = time.monotonic()
    results = run(names, options)
    print()
    print("Summary (%.0f s)" % (time.monotonic() - started))
    print(HEADER)
    for row in results.rows:
        print(format_row(row))
    for note in results.notes:
        print("note: " + note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
