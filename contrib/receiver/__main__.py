"""python -m hybiscus_webhooks_contrib.receiver --port 8001 --token secret --fail-first 2"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .receiver import FAIL_STATUS, WebhookReceiver


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hybiscus_webhooks_contrib.receiver",
        description="Receive webhooks and print each one: time, event, task_id, url, whether the Bearer "
        "token matched, and the status answered.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8001, help="port to listen on, 0 for any free one (default: %(default)s)"
    )
    parser.add_argument("--token", help="the auth_header the webhooks should carry as 'Authorization: Bearer ...'")
    failing = parser.add_mutually_exclusive_group()
    failing.add_argument(
        "--fail-first", type=int, default=0, metavar="N", help="answer %d to the first N calls" % FAIL_STATUS
    )
    failing.add_argument("--fail-always", action="store_true", help="answer %d to every call" % FAIL_STATUS)
    parser.add_argument("--json", action="store_true", help="print one JSON object per line, with headers and body")
    args = parser.parse_args(argv)
    if args.fail_first < 0:
        parser.error("--fail-first must be 0 or more")

    try:
        receiver = WebhookReceiver(
            token=args.token, fail_first=args.fail_first, fail_always=args.fail_always, host=args.host, port=args.port
        )
    except OSError as exc:
        print("error: cannot listen on %s:%d: %s" % (args.host, args.port, exc.strerror), file=sys.stderr)
        return 1
    with receiver:
        if args.json:
            print(json.dumps({"listening": receiver.url}), flush=True)
        else:
            print("Receiving webhooks at %s/ (%s). Ctrl-C stops." % (receiver.url, _plan(args)), flush=True)
        try:
            for arrival in receiver.arrivals():
                print(arrival.as_json() if args.json else arrival.line(), flush=True)
        except KeyboardInterrupt:
            pass
    return 0


def _plan(args: argparse.Namespace) -> str:
    if args.fail_always:
        return "answering %d to every call" % FAIL_STATUS
    if args.fail_first:
        return "answering %d to the first %d calls, then 204" % (FAIL_STATUS, args.fail_first)
    return "answering 204"


if __name__ == "__main__":
    sys.exit(main())
