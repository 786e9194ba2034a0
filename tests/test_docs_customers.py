"""The page for customers shows what a real delivery sends, and its example receiver works on one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest

from hybiscus_webhooks import WebhooksMiddleware, report_completed, settings
from hybiscus_webhooks.delivery import COMPLETED, delivery_id
from hybiscus_webhooks.sender import USER_AGENT
from hybiscus_webhooks.testing import ReceivedRequest, Receiver, make_stub_broker

from .asgi import call
from .docs_blocks import named_block, write_project

PAGE = "customers.rst"
REPORT_URL = "https://api.example.com/api/v1/get-report?task_id={task_id}"


def documented_request() -> tuple[str, dict[str, str], bytes]:
    head, body = named_block(PAGE, "webhook-request").code.split("\n\n", 1)
    request_line, *header_lines = head.split("\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return request_line, headers, body.rstrip("\n").encode()


@pytest.fixture
def delivered() -> Iterator[ReceivedRequest]:
    """One real delivery of the documented event, to a receiver on loopback."""
    _, headers, body = documented_request()
    event = json.loads(body)
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True)
    broker = make_stub_broker()
    worker = dramatiq.Worker(broker, worker_timeout=50)
    worker.start()
    try:
        with Receiver() as receiver:
            token = headers["Authorization"].removeprefix("Bearer ")
            webhooks = [{"url": receiver.url + "/hooks/reports", "auth_header": token}]
            report_completed(event["task_id"], {"config": {"webhooks": webhooks}}, broker=broker)
            [request] = receiver.wait_for(1)
            yield request
    finally:
        worker.stop()
        broker.close()


def test_the_documented_request_is_what_a_receiver_gets(delivered: ReceivedRequest) -> None:
    request_line, headers, body = documented_request()
    assert request_line == "%s %s HTTP/1.1" % (delivered.method, delivered.path)
    assert {name.lower() for name in headers} == set(delivered.headers)
    assert delivered.body == body
    event = json.loads(body)
    assert event["url"] == REPORT_URL.format(task_id=event["task_id"])
    for name, value in headers.items():
        real = delivered.headers[name.lower()]
        if name == "Host":
            assert real.startswith("127.0.0.1:")
        elif name == "webhook-id":
            # The page's id is the real one for the page's URL; the receiver here has another URL.
            assert value == delivery_id(event["task_id"], COMPLETED, "https://%s/hooks/reports" % headers["Host"])
            assert real.startswith("msg_") and len(real) == len(value)
        elif name == "User-Agent":
            assert real == USER_AGENT and value.split("/")[0] == USER_AGENT.split("/")[0]
        else:
            assert real == value, name


def test_the_documented_422_is_what_the_middleware_answers() -> None:
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True)
    report = {"type": "Report", "options": {"report_title": "Q3 sales"}, "components": [],
              "config": {"webhooks": [{"url": "https://customer.example/hooks/reports", "auth_header": "s3cret"},
                                      {"url": "ftp://customer.example/reports", "secret": "x"}]}}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app must not be called")

    answer = call(WebhooksMiddleware(app), body=json.dumps(report).encode())
    assert answer.status == 422
    assert answer.json() == json.loads(named_block(PAGE, "invalid-webhooks-answer").code)


def test_the_example_receiver_accepts_a_delivery_once_and_refuses_a_wrong_token(
    delivered: ReceivedRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = write_project(PAGE, tmp_path).load("customer_receiver.py").app

    def replay(**changed: str) -> int:
        headers = {**delivered.headers, **changed}
        raw = [(name.encode(), value.encode()) for name, value in headers.items()]
        return call(app, "POST", "/hooks/reports", delivered.body, headers=raw, content_length=False).status

    assert replay() == 204
    assert replay() == 204  # a duplicate: answered, not handled again
    event = json.loads(delivered.body)
    assert capsys.readouterr().out == "report.completed %s %s\n" % (event["task_id"], event["url"])
    assert replay(authorization="Bearer wrong") == 401
    assert replay(**{"webhook-id": "msg_other"}) == 204
    assert capsys.readouterr().out.count("report.completed") == 1
