"""The operations subcommands of ``hybiscus-webhooks``: check, deliveries, redeliver, send-test, new-key.

Exit codes: 0 all well; 1 the answer is bad news (warnings, nothing found, a failed test send);
2 a usage or configuration error; 3 a test send that got no answer; 4 a test send that was refused.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, TextIO

import dramatiq

from . import checks, records, settings
from .brokers import load_broker
from .delivery import COMPLETED, EVENTS, delivery_id, request_of
from .errors import DestinationRefused, HybiscusWebhooksError, InvalidWebhooks
from .records import DeliveryRecord
from .redelivery import redeliver as redeliver_task
from .schemas import load_webhooks, redact_url
from .sealing import new_key
from .sender import get_sender

#: Characters of an answer shown in the table; --json shows all that was kept.
ANSWER_WIDTH = 60


class _Failed(Exception):
    """Ends a command with a message on stderr and an exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _broker(args: argparse.Namespace) -> dramatiq.Broker | None:
    spec = args.broker_module or settings.get().BROKER_MODULE
    if spec is None:
        return None
    return load_broker(spec, source="--broker-module" if args.broker_module else "BROKER_MODULE")


def _required_broker(args: argparse.Namespace) -> dramatiq.Broker:
    broker = _broker(args)
    if broker is None:
        raise _Failed("%s needs your broker: set BROKER_MODULE, or pass --broker-module myapp.broker." % args.command)
    return broker


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _printable(text: str, width: int) -> str:
    # A receiver's answer goes to a terminal: escape control characters, so it cannot rewrite the screen.
    shown = text.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= width else shown[: width - 1] + "…"


def _state(record: DeliveryRecord, now: float) -> str:
    if record.state == records.RETRYING and record.next_attempt_at is not None:
        wait = round(record.next_attempt_at - now)
        return "retrying, next attempt %s UTC (%s)" % (
            _utc(record.next_attempt_at), "in %d s" % wait if wait > 0 else "due")
    return record.state


def print_records(found: Sequence[DeliveryRecord], out: TextIO, *, now: float) -> None:
    for record in found:
        print("%s of task %s to %s" % (record.event, record.task_id, record.endpoint), file=out)
        print("  id %s: %s (%d attempt%s, last change %s UTC)" % (
            record.delivery_id, _state(record, now), len(record.attempts), "" if len(record.attempts) == 1 else "s",
            _utc(record.updated_at)), file=out)
        if record.attempts:
            print("  %3s  %-19s  %-28s  %9s  %s" % ("#", "started (UTC)", "result", "latency", "answer"), file=out)
        for attempt in record.attempts:
            print("  %3d  %-19s  %-28s  %7.3f s  %s" % (
                attempt.number, _utc(attempt.at), attempt.result(), attempt.latency,
                _printable(attempt.response_head, ANSWER_WIDTH)), file=out)
        print(file=out)


def deliveries(args: argparse.Namespace) -> int:
    broker = _broker(args)
    if broker is not None:
        records.bind(broker)  # With RECORDS_REDIS_URL None, the records are in its Redis.
    backend = records.current()
    if backend is None:
        raise _Failed("Delivery records are off: set RECORDS_REDIS_URL, or BROKER_MODULE to a module with a "
                      "RedisBroker.")
    if args.failed:
        found = backend.failed(limit=args.limit)
    elif args.task_id:
        found = backend.for_task(args.task_id)
    else:
        raise _Failed("Name a TASK_ID, or pass --failed.")
    if args.json:
        print(json.dumps([record.as_dict() for record in found], indent=2))
    else:
        print_records(found, sys.stdout, now=time.time())
    if not found:
        what = "failed deliveries" if args.failed else "deliveries of task %s" % args.task_id
        print("No records of %s in %s (records are kept %d s)." % (
            what, backend.describe(), settings.get().RECORDS_RETENTION), file=sys.stderr)
        return 1
    return 0


def redeliver(args: argparse.Namespace) -> int:
    broker = _required_broker(args)
    report = None
    if args.report is not None:
        with open(args.report, encoding="utf-8") if args.report != "-" else sys.stdin as source:
            report = source.read()
    done = redeliver_task(args.task_id, broker=broker, event=args.event, endpoint=args.endpoint, report=report,
                          force=args.force, dry_run=args.dry_run)
    for item in done:
        verb = "skipped" if item.skipped else "would redeliver" if args.dry_run else "redelivered"
        print("%s %s of task %s to %s (%s) from the %s%s" % (
            verb, item.event, item.task_id, item.endpoint, item.delivery_id, item.source,
            ": %s" % item.skipped if item.skipped else "."))
    if not done:
        print("Nothing to redeliver for task %s: no dead letter of it%s. Dead letters are kept for the broker's "
              "dead-message TTL (7 days by default); for anything else pass its Report definition with --report."
              % (args.task_id, " matches" if args.event or args.endpoint else ""), file=sys.stderr)
        return 1
    return 1 if any(item.skipped for item in done) else 0


def send_test(args: argparse.Namespace) -> int:
    auth_header = sys.stdin.readline().strip() if args.auth_header == "-" else args.auth_header
    try:
        [webhook] = load_webhooks({"config": {"webhooks": [{"url": args.url, "auth_header": auth_header}]}},
                                  max_webhooks=1)
    except InvalidWebhooks as exc:
        names = {"url": "URL", "auth_header": "--auth-header"}
        raise _Failed("; ".join("%s: %s" % (names.get(str(problem["loc"][-1]), "URL"), problem["msg"])
                                for problem in exc.problems)) from None
    task_id = "test_" + uuid.uuid4().hex[:12]
    template = settings.get().REPORT_URL or "https://reports.example/api/v1/get-report?task_id={task_id}"
    delivery = {"id": delivery_id(task_id, args.event, webhook.url), "event": args.event, "task_id": task_id,
                "report_url": template.format(task_id=task_id), "endpoint": redact_url(webhook.url)}
    body, headers = request_of(delivery, webhook.auth_header)
    signed = "signed with %d secret(s)" % len(settings.get().SIGNING_SECRETS) if "webhook-signature" in headers \
        else "unsigned"
    print("POST %s (webhook-id %s, %s)" % (delivery["endpoint"], delivery["id"], signed))
    print("body %s" % body.decode())
    try:
        outcome = get_sender().post(webhook.url, body, headers)
    except DestinationRefused as exc:
        print("refused: %s" % exc)
        return 4
    print("%s in %.3f s" % (outcome.describe() if outcome.error is None or outcome.status is None
                            else "HTTP %d, then %s" % (outcome.status, outcome.error), outcome.elapsed))
    if outcome.response_head:
        print("answer %s" % _printable(outcome.response_head.decode("utf-8", "replace"), 400))
    if outcome.status is None:
        return 3
    return 0 if outcome.ok else 1


def print_new_key(args: argparse.Namespace) -> int:
    print(new_key())
    return 0


def check(args: argparse.Namespace) -> int:
    try:
        return _check(args)
    except HybiscusWebhooksError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 1  # Bad settings or an unimportable broker are what check is for: a failed check.


def _check(args: argparse.Namespace) -> int:
    values = settings.get()
    print("Settings from %s:" % values.source)
    for name, value in values.as_dict().items():
        print("  %s = %r" % (name, value))
    findings = []
    if values.REPORT_URL is None:
        findings.append(checks.Finding(checks.WARNING, "REPORT_URL is not set; no webhook can be sent until it is."))
    broker = _broker(args)
    if broker is None:
        findings.append(checks.Finding(checks.NOTE, "no broker to check: set BROKER_MODULE or pass --broker-module."))
    else:
        print("Broker: %s" % type(broker).__name__)
        findings.extend(checks.check_broker(broker, values))
    if getattr(args, "rabbitmq_node", None) is not None:
        findings.extend(checks.check_rabbitmq_node(args.rabbitmq_node or None, values))
    findings.extend(checks.check_records(broker))
    findings.extend(checks.check_signing_and_metrics(values))
    for finding in findings:
        print(finding, file=sys.stderr if finding.level in (checks.WARNING, checks.ERROR) else sys.stdout)
    return 1 if any(finding.level in (checks.WARNING, checks.ERROR) for finding in findings) else 0


def _run(command: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(command(args))
        except _Failed as exc:
            print("error: %s" % exc, file=sys.stderr)
            return exc.code
        except HybiscusWebhooksError as exc:
            # Our errors name settings and fields, never secret values.
            print("error: %s" % exc, file=sys.stderr)
            return 2

    return run


def add_commands(commands: Any) -> None:
    """Add the operations subcommands to the CLI's subparsers."""
    broker_option = argparse.ArgumentParser(add_help=False)
    broker_option.add_argument(
        "--broker-module", metavar="MODULE[:ATTRIBUTE]",
        help="the module that sets up your broker, as for the dramatiq command (default: the BROKER_MODULE setting)",
    )

    parser = commands.add_parser(
        "check", parents=[broker_option],
        help="validate the settings, reach the broker and the records, warn about what would break the schedule",
    )
    parser.add_argument(
        "--rabbitmq-node", metavar="NODE", nargs="?", const="",
        help="also read this RabbitMQ node's consumer_timeout with rabbitmqctl (on the broker's host; the default "
        "node if none is named) and check it against the longest hold of a scheduled retry",
    )
    parser.set_defaults(run=check)

    parser = commands.add_parser("deliveries", parents=[broker_option],
                                 help="show a task's deliveries and their attempts")
    parser.add_argument("task_id", metavar="TASK_ID", nargs="?")
    parser.add_argument("--failed", action="store_true", help="the latest exhausted or refused deliveries instead")
    parser.add_argument("--limit", type=int, default=50, help="with --failed: how many (default: 50)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=_run(deliveries))

    parser = commands.add_parser(
        "redeliver", parents=[broker_option],
        help="send a task's failed webhooks again from the dead-letter queue (or any, with --report), same ids",
    )
    parser.add_argument("task_id", metavar="TASK_ID")
    parser.add_argument("--event", choices=EVENTS)
    parser.add_argument("--endpoint", metavar="URL", help="only this endpoint (scheme, host and path)")
    parser.add_argument("--report", metavar="FILE", help="the task's Report definition (JSON; - for stdin)")
    parser.add_argument("--force", action="store_true", help="with --report: also deliveries still in flight")
    parser.add_argument("--dry-run", action="store_true", help="say what would be sent, send nothing")
    parser.set_defaults(run=_run(redeliver))

    parser = commands.add_parser(
        "send-test", help="POST a sample webhook to URL now, the way the workers would; exit 0 on a 2xx",
    )
    parser.add_argument("url", metavar="URL")
    parser.add_argument("--auth-header", metavar="TOKEN", help="sent as Authorization: Bearer TOKEN; - reads stdin")
    parser.add_argument("--event", choices=EVENTS, default=COMPLETED)
    parser.set_defaults(run=_run(send_test))

    parser = commands.add_parser(
        "new-key", help="print a new random key for MESSAGE_KEYS (put it first in the list of every process)",
    )
    parser.set_defaults(run=print_new_key)

