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
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hybiscus-webhooks", description="Report webhooks for a Hybiscus-style report server."
    )
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "check", help="load and validate the settings named by %s" % settings.ENVIRONMENT_VARIABLE
    ).set_defaults(run=check)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
