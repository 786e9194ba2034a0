"""The ``hybiscus-webhooks`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__, settings
from .errors import ImproperlyConfigured


def check(args: argparse.Namespace) -> int:
    try:
        current = settings.get()
    except ImproperlyConfigured as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 1
    print("Settings from %s:" % current.source)
    for name, value in current.as_dict().items():
        print("  %s = %r" % (name, value))
    if current.REPORT_URL is None:
        print("warning: REPORT_URL is not set; no webhook can be sent until it is.", file=sys.stderr)
        return 1
    if args.rabbitmq_node is not None:
        from .broker_checks import run_rabbitmq_check

        return run_rabbitmq_check(args.rabbitmq_node or None, current.RETRY_HOLD_LIMIT)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hybiscus-webhooks", description="Report webhooks for a Hybiscus-style report server."
    )
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check_parser = commands.add_parser(
        "check", help="load and validate the settings named by %s" % settings.ENVIRONMENT_VARIABLE
    )
    check_parser.add_argument(
        "--rabbitmq-node", metavar="NODE", nargs="?", const="",
        help="also read this RabbitMQ node's consumer_timeout with rabbitmqctl (default node if none is named) "
        "and check it against the retry schedule",
    )
    check_parser.set_defaults(run=check)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
