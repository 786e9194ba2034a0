"""The webhook receiver, in-process and as the command users run."""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Callable, Iterator

import pytest
import urllib3

from hybiscus_webhooks_contrib.receiver import Arrival, WebhookReceiver

from ..docs_blocks import commands, markdown_block
from ..processes import Process

# urllib3 1.26 and 2.x alike: no urllib3.request(), no json=.
HTTP = urllib3.PoolManager(retries=False, timeout=5)
BODY = json.dumps({"event": "report.completed", "task_id": "t-1", "url": "http://reports/get-report?task_id=t-1"})


def post(url: str, body: str = BODY, authorization: str | None = None) -> int:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    return int(HTTP.request("POST", url, body=body.encode(), headers=headers).status)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(token="s3cret", fail_first=2) as started:
        yield started


def test_it_fails_the_first_calls_then_takes_webhooks(receiver: WebhookReceiver) -> None:
    assert [post(receiver.url + "/hook", authorization="Bearer s3cret") for _ in range(4)] == [503, 503, 204, 204]


def test_it_reads_the_webhook_and_judges_the_token(receiver: WebhookReceiver) -> None:
    for authorization in ("Bearer s3cret", "Bearer other", None):
        post(receiver.url + "/hook", authorization=authorization)
    arrivals = receiver.arrivals()
    got = [next(arrivals) for _ in range(3)]
    assert [arrival.token for arrival in got] == ["matched", "wrong", "missing"]
    first = got[0]
    assert (first.event, first.task_id, first.url, first.path, first.status) == (
        "report.completed", "t-1", "http://reports/get-report?task_id=t-1", "/hook", 503,
    )
    assert first.headers["authorization"] == "Bearer s3cret" and first.body == BODY.encode()


def test_arrivals_end_when_the_receiver_stops() -> None:
    receiver = WebhookReceiver().start()
    seen: list[Arrival] = []
    reader = threading.Thread(target=lambda: seen.extend(receiver.arrivals()))
    reader.start()
    post(receiver.url)
    receiver.stop()
    reader.join(timeout=5)
    assert not reader.is_alive()
    assert [arrival.token for arrival in seen] == ["not checked"]


def test_a_line_tells_time_event_task_url_token_and_answer() -> None:
    arrival = Arrival(at=0.0, path="/", event="report.failed", task_id="t-2", url="http://r/x", token="wrong",
                      status=204, headers={}, body=b"")
    assert arrival.line().endswith(" report.failed task_id=t-2 url=http://r/x token=wrong -> 204")
    odd = Arrival(at=0.0, path="/x", event=None, task_id=None, url=None, token="missing", status=204,
                  headers={}, body=b"hello")
    assert "not a webhook body (5 bytes) on /x" in odd.line()
    assert json.loads(odd.as_json())["body"] == "hello"


def test_fail_always_never_succeeds() -> None:
    with WebhookReceiver(fail_always=True) as receiver:
        assert {post(receiver.url) for _ in range(3)} == {503}


def receiver_command(*options: str) -> list[str]:
    return [sys.executable, "-m", "hybiscus_webhooks_contrib.receiver", *options]


def test_the_command_of_the_readme_prints_each_webhook(start_process: Callable[..., Process]) -> None:
    [argv] = commands(markdown_block("contrib/README.md", "contrib-receiver").code)
    assert argv[:3] == ["python", "-m", "hybiscus_webhooks_contrib.receiver"] and argv[3:5] == ["--port", "8001"]
    # As written, on a free port instead of 8001: --token s3cret --fail-first 2.
    process = start_process("receiver", [sys.executable, *argv[1:4], "0", *argv[5:]])
    [banner] = process.wait_for(r"Receiving webhooks at http://127\.0\.0\.1:\d+/")
    url = banner.split()[3]
    assert "answering 503 to the first 2 calls, then 204" in banner
    assert post(url + "hook", authorization="Bearer s3cret") == 503
    assert post(url + "hook", authorization="Bearer s3cret") == 503
    assert post(url + "hook", authorization="Bearer nope") == 204
    lines = process.wait_for(r"report\.completed task_id=t-1", count=3)
    assert lines[0].endswith("url=http://reports/get-report?task_id=t-1 token=matched -> 503")
    assert lines[2].endswith("token=wrong -> 204")


def test_the_command_prints_json_lines_when_asked(start_process: Callable[..., Process]) -> None:
    process = start_process("receiver", receiver_command("--port", "0", "--fail-always", "--json"))
    url = json.loads(process.wait_for(r"listening")[0])["listening"]
    assert post(url + "/x") == 503
    [line] = process.wait_for(r'"event": "report.completed"')
    arrival = json.loads(line)
    assert (arrival["status"], arrival["token"], arrival["body"]) == (503, "not checked", BODY)


def test_the_command_says_when_the_port_is_taken(start_process: Callable[..., Process]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        process = start_process("receiver", receiver_command("--port", str(taken.getsockname()[1])))
        assert process.wait(timeout=30) == 1
    assert "error: cannot listen on 127.0.0.1:" in process.tail()
