"""Checks of a broker's server settings against the retry schedule, for ``hybiscus-webhooks check``.

RabbitMQ closes a channel that holds a delivery unacked for longer than its ``consumer_timeout``,
and a Dramatiq worker holds each scheduled retry unacked until it is due. The effective value is
not visible over AMQP, nor without the management plugin, except through ``rabbitmqctl`` on a
host that has the node's Erlang cookie.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import holds
from .delivery import MAX_RETRIES, backoff_millis
from .errors import HybiscusWebhooksError

#: What a hold may overrun its limit by: the worker's tick, a busy queue. A timeout closer than this warns.
MARGIN_MILLIS = 60_000
#: The longest wait of the schedule: the last retry's 64 minutes.
LONGEST_DELAY_MILLIS = backoff_millis(MAX_RETRIES - 1)

#: Asks the node for the effective value; prints ``{ok,1800000}``, or ``undefined`` when none is set.
READ_EXPRESSION = "application:get_env(rabbit, consumer_timeout)."


class BrokerCheckFailed(HybiscusWebhooksError):
    """A broker's settings could not be read."""


def longest_hold_millis(hold_limit_millis: int | None) -> int:
    """The longest a worker holds a retry unacked, under a RETRY_HOLD_LIMIT (None: no limit)."""
    if hold_limit_millis is None:
        return LONGEST_DELAY_MILLIS
    return min(LONGEST_DELAY_MILLIS, hold_limit_millis)


def consumer_timeout_warning(timeout_ms: int | None, longest_hold_ms: int) -> str | None:
    """What is wrong when RabbitMQ's ``consumer_timeout`` is too short for the holds; None when it is fine."""
    if timeout_ms is None or longest_hold_ms + MARGIN_MILLIS <= timeout_ms:
        return None
    return (
        "RabbitMQ's consumer_timeout is %s, and a worker holds a scheduled retry unacked for up to %s: the node "
        "would close the worker's delay-queue channel and redeliver every retry it holds, again and again. "
        "Set RETRY_HOLD_LIMIT to at most %s, or raise consumer_timeout (rabbitmq.conf) above %s."
        % (_minutes(timeout_ms), _minutes(longest_hold_ms), _minutes(max(timeout_ms - MARGIN_MILLIS, 0)),
           _minutes(longest_hold_ms + MARGIN_MILLIS))
    )


def _minutes(millis: int) -> str:
    return "%g min" % round(millis / 60_000, 2)


def parse_consumer_timeout(output: str) -> int | None:
    """The value in rabbitmqctl's answer to READ_EXPRESSION: ms, or None when no timeout applies."""
    text = output.strip()
    match = re.fullmatch(r"\{ok,\s*(\d+)\}", text)
    if match is not None:
        return int(match.group(1))
    # The node applies a timeout only when the value is an integer: unset, `false` or `infinity` turn it off.
    if text == "undefined" or re.fullmatch(r"\{ok,.*\}", text, flags=re.S):
        return None
    raise BrokerCheckFailed("Unexpected answer for consumer_timeout from rabbitmqctl: %r." % text[:200])


def read_consumer_timeout(
    node: str | None = None,
    *,
    rabbitmqctl: str = "rabbitmqctl",
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
) -> int | None:
    """The effective consumer_timeout of a running node (ms; None when off), read with ``rabbitmqctl eval``."""
    command: Sequence[str] = [rabbitmqctl, "-q", *(["-n", node] if node else []), "eval", READ_EXPRESSION]
    try:
        result = run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerCheckFailed("Could not run %s: %s." % (rabbitmqctl, exc)) from exc
    if result.returncode != 0:
        raise BrokerCheckFailed(
            "%s could not read consumer_timeout from node %s (exit %d): %s"
            % (rabbitmqctl, node or "(default)", result.returncode, (result.stderr or result.stdout).strip()[:500])
        )
    return parse_consumer_timeout(result.stdout)


def check_rabbitmq_node(node: str | None, retry_hold_limit: str | float | None, **reading: Any) -> str | None:
    """Read a node's consumer_timeout and compare it with the holds that RETRY_HOLD_LIMIT allows on RabbitMQ."""
    timeout = read_consumer_timeout(node, **reading)
    return consumer_timeout_warning(timeout, longest_hold_millis(holds.resolve(retry_hold_limit, rabbitmq=True)))


def run_rabbitmq_check(node: str | None, retry_hold_limit: str | float | None, **reading: Any) -> int:
    """``hybiscus-webhooks check --rabbitmq-node``: prints what it found; 0 when fine, 1 otherwise."""
    try:
        problem = check_rabbitmq_node(node, retry_hold_limit, **reading)
    except BrokerCheckFailed as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 1
    if problem is not None:
        print("warning: %s" % problem, file=sys.stderr)
        return 1
    print("RabbitMQ's consumer_timeout leaves room for every retry hold.")
    return 0
