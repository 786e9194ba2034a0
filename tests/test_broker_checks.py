"""RabbitMQ's consumer_timeout against the retry holds: the pure checks and the reading, with a stand-in rabbitmqctl."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from hybiscus_webhooks.broker_checks import (
    LONGEST_DELAY_MILLIS,
    READ_EXPRESSION,
    BrokerCheckFailed,
    consumer_timeout_warning,
    longest_hold_millis,
    parse_consumer_timeout,
    read_consumer_timeout,
    run_rabbitmq_check,
)
from hybiscus_webhooks.cli import main

MINUTE = 60_000


def test_the_longest_hold_is_the_64_minute_retry_unless_limited() -> None:
    assert longest_hold_millis(None) == LONGEST_DELAY_MILLIS == 64 * MINUTE
    assert longest_hold_millis(15 * MINUTE) == 15 * MINUTE
    assert longest_hold_millis(90 * MINUTE) == 64 * MINUTE


@pytest.mark.parametrize(("timeout", "hold", "warns"), [
    (30 * MINUTE, 64 * MINUTE, True),   # RabbitMQ's default against the whole schedule held whole.
    (30 * MINUTE, 15 * MINUTE, False),  # ... against RETRY_HOLD_LIMIT = "auto".
    (15 * MINUTE + 30_000, 15 * MINUTE, True),  # Within the margin: a busy worker could overrun it.
    (66 * MINUTE, 64 * MINUTE, False),
    (None, 64 * MINUTE, False),         # No timeout at all.
    (10_000, 4_000, True),
])
def test_a_timeout_too_short_for_the_holds_warns(timeout: int | None, hold: int, warns: bool) -> None:
    warning = consumer_timeout_warning(timeout, hold)
    assert (warning is not None) == warns
    if warning is not None:
        assert "consumer_timeout" in warning and "RETRY_HOLD_LIMIT" in warning


def test_the_warning_says_what_to_set() -> None:
    warning = consumer_timeout_warning(30 * MINUTE, 64 * MINUTE)
    assert warning is not None
    assert "consumer_timeout is 30 min" in warning and "up to 64 min" in warning
    assert "RETRY_HOLD_LIMIT to at most 29 min" in warning and "above 65 min" in warning


@pytest.mark.parametrize(("output", "value"), [
    ("{ok,1800000}\n", 1_800_000),
    ("{ok, 10000}", 10_000),
    ("undefined\n", None),
    ("{ok,false}", None),
    ("{ok,infinity}", None),
])
def test_rabbitmqctl_answers_are_read(output: str, value: int | None) -> None:
    assert parse_consumer_timeout(output) == value


def test_an_unexpected_answer_is_an_error() -> None:
    with pytest.raises(BrokerCheckFailed, match="Unexpected answer"):
        parse_consumer_timeout("Error: unable to perform an operation on node")


class FakeRabbitmqctl:
    def __init__(self, returncode: int = 0, stdout: str = "{ok,1800000}\n", stderr: str = "") -> None:
        self.result = (returncode, stdout, stderr)
        self.commands: list[list[str]] = []

    def __call__(self, command: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
        self.commands.append(list(command))
        return subprocess.CompletedProcess(command, *self.result)


def test_the_value_is_read_with_rabbitmqctl_eval() -> None:
    fake = FakeRabbitmqctl()
    assert read_consumer_timeout("rabbit@broker", run=fake) == 1_800_000
    assert fake.commands == [["rabbitmqctl", "-q", "-n", "rabbit@broker", "eval", READ_EXPRESSION]]
    read_consumer_timeout(run=fake)
    assert fake.commands[1] == ["rabbitmqctl", "-q", "eval", READ_EXPRESSION]


def test_a_node_that_cannot_be_reached_is_an_error_naming_it() -> None:
    fake = FakeRabbitmqctl(returncode=69, stdout="", stderr="Error: unable to perform an operation on node")
    with pytest.raises(BrokerCheckFailed, match=r"rabbit@gone.*exit 69.*unable to perform"):
        read_consumer_timeout("rabbit@gone", run=fake)
    with pytest.raises(BrokerCheckFailed, match="Could not run"):
        read_consumer_timeout(rabbitmqctl="/nonexistent/rabbitmqctl")


def test_the_check_passes_on_defaults_with_the_auto_limit_and_fails_without_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = FakeRabbitmqctl()
    assert run_rabbitmq_check(None, "auto", run=fake) == 0
    assert "leaves room" in capsys.readouterr().out
    assert run_rabbitmq_check(None, None, run=fake) == 1
    assert "warning: RabbitMQ's consumer_timeout is 30 min" in capsys.readouterr().err
    assert run_rabbitmq_check(None, "auto", run=FakeRabbitmqctl(returncode=2)) == 1
    assert capsys.readouterr().err.startswith("error: rabbitmqctl could not read consumer_timeout")


def test_the_check_command_takes_a_node(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    seen = []
    monkeypatch.setattr("hybiscus_webhooks.broker_checks.check_rabbitmq_node",
                        lambda node, limit: seen.append((node, limit)))
    assert main(["check", "--rabbitmq-node", "rabbit@broker"]) == 0
    assert main(["check", "--rabbitmq-node"]) == 0
    assert main(["check"]) == 0
    assert seen == [("rabbit@broker", "auto"), (None, "auto")]
