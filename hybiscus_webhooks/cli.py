"""The ``hybiscus-webhooks`` command."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from . import __version__
from .commands import add_commands


def demo(args: argparse.Namespace) -> int:
    # The demo lives in hybiscus_webhooks_contrib and needs the 'demo' extra: imported only when asked for,
    # and by name, so that type-checking the library does not need the extra either.
    try:
        contrib_demo = importlib.import_module("hybiscus_webhooks_contrib.demo")
    except ModuleNotFoundError as exc:
        if exc.name not in _DEMO_EXTRA_MODULES:
            raise
        print(
            "error: the demo needs the 'demo' extra (%s is not installed): pip install 'hybiscus-webhooks[demo]'"
            % exc.name,
            file=sys.stderr,
        )
        return 2
    return int(contrib_demo.run(broker_url=args.broker, port=args.port, once=args.once, timeout=args.timeout))


# Top-level modules of the 'demo' extra's requirements.
_DEMO_EXTRA_MODULES = {"fpdf", "uvicorn"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hybiscus-webhooks", description="Report webhooks for a Hybiscus-style report server."
    )
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # check, deliveries, redeliver and send-test; demo below.
    add_commands(commands)
    demo_parser = commands.add_parser(
        "demo",
        help="run a report server, a worker and two webhook receivers on this machine and send sample reports "
        "(needs the 'demo' extra)",
    )
    demo_parser.add_argument(
        "--broker", metavar="URL", help="a redis:// or amqp:// broker instead of the embedded in-memory one"
    )
    demo_parser.add_argument(
        "--port", type=int, default=8000, help="port of the report server on 127.0.0.1, 0 for any (default: 8000)"
    )
    demo_parser.add_argument(
        "--once", action="store_true",
        help="exit once the sample webhooks arrived (status 0), or after --timeout without them (status 1)",
    )
    demo_parser.add_argument(
        "--timeout", type=float, default=240.0, metavar="SECONDS",
        help="how long --once waits for the sample webhooks (default: 240)",
    )
    demo_parser.set_defaults(run=demo)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
