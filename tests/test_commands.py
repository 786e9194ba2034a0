"""The operations commands: deliveries, redeliver, send-test and check, in process and as real subprocesses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import standardwebhooks
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AgeLimit, Retries, TimeLimit

from hybiscus_webhooks import DestinationRefused, Webhook, records, report_completed, settings
from hybiscus_webhooks import delivery as delivery_module
from hybiscus_webhooks.cli import main
from hybiscus_webhooks.deadletters import dead_letters
from hybiscus_webhooks.delivery import ACTOR_NAME, COMPLETED, FAILED, delivery_id, install, send
from hybiscus_webhooks.records import DELIVERED, EXHAUSTED, RETRYING, MemoryRecords
from hybiscus_webhooks.sender import Outcome
from hybiscus_webhooks.testing import DramatiqClock, Receiver

from . import cli_broker
from .conftest import REPORT_URL, Enqueued, require_service, unique
from .test_brokers import real_broker  # noqa: F401 (a fixture: Redis and RabbitMQ, cleaned up)
from .test_signing import SECRET_A

SECRET = "tok_commands_51a2b3"
QUEUE = "hybiscus_webhooks"
BROKER = ["--broker-module", "tests.cli_broker:broker"]


@pytest.fixture
def memory(stub_broker: StubBroker) -> Iterator[MemoryRecords]:
    backend = MemoryRecords()
    records.use(backend)
    cli_broker.broker = stub_broker
    yield backend
    records.use(None)
    cli_broker.broker = None


def exhaust(broker: StubBroker, start_worker: Any, enqueued: Enqueued, clock: DramatiqClock, receiver: Receiver,
            task_id: str, url: str) -> str:
    receiver.default = 503
    sent = send(COMPLETED, task_id, Webhook(url, SECRET), broker=broker)
    start_worker(broker)
    for retry in range(1, 9):
        clock.now = enqueued.wait_for_eta(retry) / 1000
    receiver.wait_for(9)
    broker.join(QUEUE, fail_fast=False)
    return sent


def test_deliveries_shows_each_attempt_and_the_state(
    stub_broker: StubBroker, start_worker: Any, enqueued: Enqueued, clock: DramatiqClock, receiver: Receiver,
    memory: MemoryRecords, capsys: pytest.CaptureFixture[str],
) -> None:
    receiver.statuses = [500]
    receiver.default = 200  # Not 204, which must not carry the body this receiver sends with every answer.
    receiver.response_body = b"oops \x1b[2J\x07 cleared your screen"
    sent = send(COMPLETED, "task-c1", Webhook(receiver.url + "/hook?key=query-secret-1", SECRET), broker=stub_broker)
    start_worker(stub_broker)
    eta = enqueued.wait_for_eta(1)

    assert main(["deliveries", "task-c1"]) == 0
    out = capsys.readouterr().out
    assert "report.completed of task task-c1 to %s/hook" % receiver.url in out
    assert "id %s: retrying, next attempt" % sent in out and "(in 30 s)" in out
    assert "HTTP 500" in out and "\\x1b[2J\\x07 cleared" in out and "\x1b" not in out
    assert SECRET not in out and "query-secret-1" not in out

    clock.now = eta / 1000
    receiver.wait_for(2)
    stub_broker.join(QUEUE, fail_fast=False)
    assert main(["deliveries", "task-c1", "--json"]) == 0
    [shown] = json.loads(capsys.readouterr().out)
    assert shown["state"] == DELIVERED and [a["status"] for a in shown["attempts"]] == [500, 200]
    assert shown == json.loads(json.dumps(memory.for_task("task-c1")[0].as_dict()))


def test_deliveries_of_an_unknown_task_and_with_records_off(
    memory: MemoryRecords, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deliveries", "task-none"]) == 1
    assert "No records of deliveries of task task-none" in capsys.readouterr().err
    records.use(None)
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, RECORDS_REDIS_URL=False)
    assert main(["deliveries", "task-none"]) == 2
    assert "Delivery records are off" in capsys.readouterr().err


def test_an_exhausted_delivery_is_listed_then_redelivered_with_the_same_id_and_its_auth_header(
    stub_broker: StubBroker, start_worker: Any, enqueued: Enqueued, clock: DramatiqClock, receiver: Receiver,
    memory: MemoryRecords, capsys: pytest.CaptureFixture[str],
) -> None:
    url = receiver.url + "/late"
    sent = exhaust(stub_broker, start_worker, enqueued, clock, receiver, "task-c2", url)
    other = send(FAILED, "task-c2-other", Webhook(receiver.url + "/other"), broker=stub_broker)
    other_retry = enqueued.wait_for_eta(9)  # The other task waits for its first retry: in flight, not dead.

    assert main(["deliveries", "--failed"]) == 0
    assert "id %s: exhausted (9 attempts" % sent in capsys.readouterr().out

    assert main(["redeliver", "task-c2", "--dry-run", *BROKER]) == 0
    assert "would redeliver report.completed of task task-c2" in capsys.readouterr().out
    assert len(stub_broker.dead_letters) == 1

    receiver.default = 204
    assert main(["redeliver", "task-c2", *BROKER]) == 0
    assert "redelivered report.completed of task task-c2 to %s (%s) from the dead-letter queue." % (
        url, sent) in capsys.readouterr().out
    receiver.wait_for(11)
    last = receiver.requests[-1]
    assert (last.path, last.status, last.headers["webhook-id"], last.headers["authorization"]) == (
        "/late", 204, sent, "Bearer " + SECRET)
    assert memory.get(other).state == RETRYING  # type: ignore[union-attr]
    clock.now = other_retry / 1000
    stub_broker.join(QUEUE, fail_fast=False)
    assert stub_broker.dead_letters == []
    record = memory.get(sent)
    assert record is not None and record.state == DELIVERED and len(record.attempts) == 10
    assert record.attempts[-1].number == 1  # A redelivery starts its own count.
    assert memory.failed() == []

    assert main(["redeliver", "task-c2", *BROKER]) == 1  # Nothing dead any more.
    assert "Nothing to redeliver for task task-c2" in capsys.readouterr().err


def test_redeliver_from_the_report_resends_a_delivered_webhook_but_not_one_in_flight(
    stub_broker: StubBroker, start_worker: Any, enqueued: Enqueued, receiver: Receiver, memory: MemoryRecords,
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    done_url, busy_url = receiver.url + "/done", receiver.url + "/busy"
    done, busy = {"url": done_url, "auth_header": SECRET}, {"url": busy_url}
    report = {"config": {"webhooks": [done, busy]}}
    # One delivered, then one waiting for its first retry: sent one after the other, so each gets its status.
    [done_id] = report_completed("task-c3", {"config": {"webhooks": [done]}}, broker=stub_broker)
    start_worker(stub_broker)
    receiver.wait_for(1)
    stub_broker.join(QUEUE, fail_fast=False)
    receiver.statuses = [503]
    [busy_id] = report_completed("task-c3", {"config": {"webhooks": [busy]}}, broker=stub_broker)
    enqueued.wait_for_eta(1)
    assert memory.get(done_id).state == DELIVERED  # type: ignore[union-attr]
    assert memory.get(busy_id).state == RETRYING  # type: ignore[union-attr]
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))

    assert main(["redeliver", "task-c3", "--report", str(path), *BROKER]) == 1
    out = capsys.readouterr().out
    assert "redelivered report.completed of task task-c3 to %s (%s) from the report." % (done_url, done_id) in out
    assert "skipped report.completed of task task-c3 to %s (%s) from the report: it is retrying" % (
        busy_url, busy_id) in out
    receiver.wait_for(3)
    again = receiver.requests[2]
    assert (again.path, again.headers["webhook-id"], again.headers["authorization"]) == (
        "/done", done_id, "Bearer " + SECRET)

    assert main(["redeliver", "task-c3", "--report", str(path), "--endpoint", busy_url, "--force", *BROKER]) == 0
    assert "redelivered" in capsys.readouterr().out
    receiver.wait_for(4)
    assert receiver.requests[3].headers["webhook-id"] == busy_id

    assert main(["redeliver", "task-c9", "--report", str(path), *BROKER]) == 2
    assert "name one with --event" in capsys.readouterr().err


def test_redeliver_needs_the_broker(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["redeliver", "task-c4"]) == 2
    assert "set BROKER_MODULE, or pass --broker-module" in capsys.readouterr().err
    assert main(["redeliver", "task-c4", "--broker-module", "tests.no_such_module"]) == 2
    assert "--broker-module: could not import 'tests.no_such_module'" in capsys.readouterr().err


class SwitchableSender:
    """Refuses every destination until told otherwise: a dead letter in one attempt."""

    def __init__(self) -> None:
        self.refuse = True
        self.real = delivery_module.get_sender

    def __call__(self) -> Any:
        return self if self.refuse else self.real()

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        raise DestinationRefused("Refused for this test.")


def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    # A dead letter reaches the broker's dead-letter queue with no event a test can wait on.
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the condition did not hold within %s s" % timeout)
        time.sleep(0.05)


def dead_task_ids(broker: dramatiq.Broker) -> list[str]:
    with dead_letters(broker, settings.get().QUEUE_NAME, ACTOR_NAME) as letters:
        return sorted(letter.message.args[0]["task_id"] for letter in letters)


def test_redeliver_from_the_dead_letter_queue_of_a_real_broker(
    real_broker: dramatiq.Broker,  # noqa: F811 (the fixture imported above)
    start_worker: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    sender = SwitchableSender()
    monkeypatch.setattr(delivery_module, "get_sender", sender)
    monkeypatch.setattr(cli_broker, "broker", real_broker)
    report = {"config": {"webhooks": [{"url": receiver.url + "/back", "auth_header": SECRET}]}}
    [sent] = report_completed("task-c5", report, broker=real_broker)
    report_completed("task-c5-other", report, broker=real_broker)
    start_worker(real_broker)
    wait_until(lambda: dead_task_ids(real_broker) == ["task-c5", "task-c5-other"])

    sender.refuse = False
    assert main(["redeliver", "task-c5", *BROKER]) == 0
    assert "from the dead-letter queue" in capsys.readouterr().out
    [request] = receiver.wait_for(1)
    assert (request.headers["webhook-id"], request.headers["authorization"]) == (sent, "Bearer " + SECRET)
    assert json.loads(request.body)["task_id"] == "task-c5"
    assert dead_task_ids(real_broker) == ["task-c5-other"]  # The other task's dead letter is still there.


def test_send_test_posts_a_signed_sample_and_exits_by_outcome(
    receiver: Receiver, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, SIGNING_SECRETS=[SECRET_A])
    receiver.statuses = [200, 500]  # Not 204, which must not carry the body this receiver sends with every answer.
    receiver.response_body = b"not today"
    monkeypatch.setattr(sys, "stdin", _Stdin(SECRET + "\n"))
    assert main(["send-test", receiver.url + "/t?a=1", "--auth-header", "-"]) == 0
    out = capsys.readouterr().out
    assert "POST %s/t (webhook-id msg_" % receiver.url in out and "signed with 1 secret(s)" in out
    assert "HTTP 200 in " in out and SECRET not in out
    [request] = receiver.wait_for(1)
    assert request.path == "/t?a=1" and request.headers["authorization"] == "Bearer " + SECRET
    assert standardwebhooks.Webhook(SECRET_A).verify(request.body, request.headers)["event"] == COMPLETED

    assert main(["send-test", receiver.url + "/t", "--event", FAILED]) == 1
    out = capsys.readouterr().out
    assert "HTTP 500 in " in out and "answer not today" in out
    assert json.loads(receiver.wait_for(2)[1].body)["event"] == FAILED


class _Stdin:
    def __init__(self, text: str) -> None:
        self.text = text

    def readline(self) -> str:
        return self.text


def test_send_test_without_an_answer_refused_or_with_a_bad_url(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))  # Bound, not listening: the connection is refused.
        assert main(["send-test", "http://127.0.0.1:%d/" % bound.getsockname()[1]]) == 3
    assert "Error in " in capsys.readouterr().out  # The error's class name, e.g. NewConnectionError.

    assert main(["send-test", "ftp://example.com/x"]) == 2
    assert "error: URL: Must be an absolute http or https URL." in capsys.readouterr().err
    assert main(["send-test", "https://a.example/", "--auth-header", "two words"]) == 2
    assert "--auth-header: Must contain only visible ASCII" in capsys.readouterr().err

    monkeypatch.setattr(delivery_module, "get_sender", SwitchableSender())
    monkeypatch.setattr("hybiscus_webhooks.commands.get_sender", SwitchableSender())
    assert main(["send-test", "http://127.0.0.1:9/"]) == 4
    assert "refused: Refused for this test." in capsys.readouterr().out


def test_check_warns_about_what_would_break_the_schedule(capsys: pytest.CaptureFixture[str]) -> None:
    host_retry_when = lambda retries, exc: retries < 2  # noqa: E731
    broker = StubBroker(middleware=[Retries(retry_when=host_retry_when)])
    install(broker)
    # Added after install(), so the delivery actor is not exempt from the age limit.
    broker.add_middleware(AgeLimit(max_age=3_600_000))
    broker.add_middleware(TimeLimit(time_limit=10_000))
    cli_broker.broker = broker
    try:
        assert main(["check", *BROKER]) == 1
    finally:
        cli_broker.broker = None
    captured = capsys.readouterr()
    assert "ok: the broker's Retries has a retry_when of its own; the delivery actor's overrides it" in captured.out
    assert "warning: AgeLimit drops messages older than 60.0 min, but the last retry of a delivery can come " \
           "130.5 min after its first attempt" in captured.err
    assert "warning: TimeLimit stops an actor after 10000 ms, but an attempt to a slow receiver may take up " \
           "to 21000 ms" in captured.err


def test_check_passes_a_stock_broker_and_catches_two_retries(capsys: pytest.CaptureFixture[str]) -> None:
    cli_broker.broker = StubBroker()
    try:
        assert main(["check", *BROKER]) == 0
        assert "Broker: StubBroker" in capsys.readouterr().out
        cli_broker.broker.add_middleware(Retries())
        assert main(["check", *BROKER]) == 1
        assert "the broker has 2 Retries middleware" in capsys.readouterr().err
    finally:
        cli_broker.broker = None


def test_check_of_a_broker_that_cannot_be_reached_hides_its_password(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("redis")
    from dramatiq.brokers.redis import RedisBroker

    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        cli_broker.broker = RedisBroker(url="redis://:pw-check-secret@127.0.0.1:%d/0" % bound.getsockname()[1])
        try:
            assert main(["check", *BROKER]) == 1
        finally:
            cli_broker.broker = None
    captured = capsys.readouterr()
    assert "error: cannot reach the RedisBroker (ConnectionError)." in captured.err
    assert "pw-check-secret" not in captured.out + captured.err


@pytest.fixture
def project(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A host project on disk: a settings module naming its broker module, as an operator would have."""
    require_service("Redis", 6379)
    namespace, prefix = unique("hw-test-cli"), unique("hw-test-cli-records") + ":"
    (tmp_path / "opsapp").mkdir()
    (tmp_path / "opsapp" / "__init__.py").write_text("")
    (tmp_path / "opsapp" / "broker.py").write_text(
        "import dramatiq\nfrom dramatiq.brokers.redis import RedisBroker\n"
        "dramatiq.set_broker(RedisBroker(url='redis://127.0.0.1:6379/0', namespace=%r))\n" % namespace
    )
    (tmp_path / "opsapp" / "settings.py").write_text(
        "REPORT_URL = %r\nBROKER_MODULE = 'opsapp.broker'\nRECORDS_KEY_PREFIX = %r\nSIGNING_SECRETS = [%r]\n"
        "ALLOW_PRIVATE_DESTINATIONS = True  # the test's receiver is on loopback\n"
        % (REPORT_URL, prefix, SECRET_A)
    )
    yield {**os.environ, "PYTHONPATH": str(tmp_path), "HYBISCUS_WEBHOOKS_SETTINGS": "opsapp.settings",
           "PREFIX": prefix, "NAMESPACE": namespace}
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    for pattern in (prefix + "*", namespace + ":*"):
        for key in client.scan_iter(pattern):
            client.delete(key)
    client.close()


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hybiscus_webhooks", *args], env=env, capture_output=True,
                          text=True, check=False, timeout=60)


@pytest.mark.redis
def test_the_command_reads_the_records_a_worker_wrote_and_checks_the_host_broker(
    project: dict[str, str], receiver: Receiver,
) -> None:
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True,
                       RECORDS_REDIS_URL="redis://127.0.0.1:6379/0", RECORDS_KEY_PREFIX=project["PREFIX"])
    backend = records.current()
    assert backend is not None
    sent = delivery_id("task-c6", COMPLETED, receiver.url + "/h")
    backend.write({"id": sent, "task_id": "task-c6", "event": COMPLETED, "endpoint": receiver.url + "/h"},
                  state=EXHAUSTED, at=1_700_000_000.0,
                  attempt=records.Attempt(9, 1_699_999_999.5, 503, None, 0.5, "busy"))

    shown = run_cli(project, "deliveries", "task-c6")
    assert shown.returncode == 0, shown.stderr
    assert "id %s: exhausted (1 attempt, last change 2023-11-14 22:13:20 UTC)" % sent in shown.stdout
    assert "    9  2023-11-14 22:13:19  HTTP 503" in shown.stdout

    checked = run_cli(project, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Broker: RedisBroker" in checked.stdout and "ok: the RedisBroker answers." in checked.stdout
    assert "ok: delivery records: Redis at 127.0.0.1:6379 db 0 (keys %s*)." % project["PREFIX"] in checked.stdout
    assert "ok: webhooks are signed with 1 secret(s)." in checked.stdout
    assert "SIGNING_SECRETS = '********'" in checked.stdout and SECRET_A[6:] not in checked.stdout

    tested = run_cli(project, "send-test", receiver.url + "/sample")
    assert tested.returncode == 0 and "HTTP 204" in tested.stdout
    assert receiver.wait_for(1)[0].headers["webhook-signature"].startswith("v1,")


@pytest.mark.rabbitmq
def test_check_reaches_rabbitmq_and_names_the_consumer_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    require_service("RabbitMQ", 5672)
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    broker = RabbitmqBroker(url="amqp://guest:guest@127.0.0.1:5672/%2F")
    cli_broker.broker = broker
    try:
        assert main(["check", *BROKER]) == 0
    finally:
        cli_broker.broker = None
        broker.close()
    out = capsys.readouterr().out
    assert "ok: the RabbitmqBroker answers." in out
    assert "note: a worker holds a scheduled retry unacked for up to 15.0 min (RETRY_HOLD_LIMIT)" in out
    assert "Run check --rabbitmq-node on the broker's host" in out
