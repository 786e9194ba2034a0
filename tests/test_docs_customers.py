"""The page for customers shows what a real delivery sends, and its example receiver works on one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import standardwebhooks

from hybiscus_webhooks import WebhooksMiddleware, report_completed, settings
from hybiscus_webhooks.delivery import COMPLETED, delivery_id
from hybiscus_webhooks.sender import USER_AGENT
from hybiscus_webhooks.signing import SigningSecret, verify
from hybiscus_webhooks.testing import ReceivedRequest, Receiver, make_stub_broker

from .asgi import call
from .docs_blocks import markdown_block, named_block, write_project

PAGE = "customers.rst"
REPORT_URL = "https://api.example.com/api/v1/get-report?task_id={task_id}"
# The page's example signing secret: its receivers verify with it, and its request is signed with it.
SECRET = "whsec_0V8K56j5EumxCYxEcDJhZYwOiMtkxmWf0GDijUl2cug="


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
    # The receiver listens on loopback, which the SSRF guard refuses unless told otherwise.
    settings.configure(REPORT_URL=REPORT_URL, SIGNING_SECRETS=[SECRET], ALLOW_PRIVATE_DESTINATIONS=True)
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
        elif name == "webhook-timestamp":
            assert real.isdigit() and len(real) == len(value)
        elif name == "webhook-signature":
            # The page's signature is right for the page's id, timestamp and body; the real one for the real ones.
            page_headers = {key.lower(): text for key, text in headers.items()}
            signed_at = int(headers["webhook-timestamp"])
            assert verify([SigningSecret.parse(SECRET)], page_headers, body, now=signed_at) == headers["webhook-id"]
            assert standardwebhooks.Webhook(SECRET).verify(delivered.body, delivered.headers) == event
            assert real.startswith("v1,") and len(real) == len(value)
        elif name == "User-Agent":
            assert real == USER_AGENT and value.split("/")[0] == USER_AGENT.split("/")[0]
        else:
            assert real == value, name


def test_the_documented_422_is_what_the_middleware_answers() -> None:
    settings.configure(REPORT_URL=REPORT_URL)
    # The page's submission, with the second webhook its text describes.
    report = json.loads(named_block(PAGE, "customers-submission").code)
    report["config"]["webhooks"].append({"url": "ftp://customer.example/reports", "secret": "x"})

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app must not be called")

    answer = call(WebhooksMiddleware(app), body=json.dumps(report).encode())
    assert answer.status == 422
    assert answer.json() == json.loads(named_block(PAGE, "invalid-webhooks-answer").code)


def test_the_documented_submission_is_accepted_and_the_readme_shows_the_same() -> None:
    settings.configure(REPORT_URL=REPORT_URL)
    body = named_block(PAGE, "customers-submission").code.encode()
    seen = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["state"]["webhooks"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    assert call(WebhooksMiddleware(app), body=body).status == 200
    [webhooks] = seen
    assert [webhook.url for webhook in webhooks] == ["https://customer.example/hooks/reports"]
    assert json.loads(markdown_block("README.md", "readme-submission").code) == json.loads(body)


@pytest.mark.parametrize("file", ["customer_receiver.py", "customer_receiver_helper.py"])
def test_the_example_receivers_handle_a_delivery_once_and_refuse_bad_signatures(
    delivered: ReceivedRequest, file: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = write_project(PAGE, tmp_path).load(file).app

    def replay(body: bytes = delivered.body, **changed: str) -> int:
        headers = {**delivered.headers, **changed}
        raw = [(name.encode(), value.encode()) for name, value in headers.items()]
        return call(app, "POST", "/hooks/reports", body, headers=raw, content_length=False).status

    assert replay() == 204
    assert replay() == 204  # a duplicate: answered, not handled again
    event = json.loads(delivered.body)
    assert capsys.readouterr().out == "report.completed %s %s\n" % (event["task_id"], event["url"])
    assert replay(delivered.body.replace(b"completed", b"failed")) == 401  # the body is signed
    assert replay(**{"webhook-id": "msg_other"}) == 401  # so is the id
    assert replay(**{"webhook-signature": "v1," + "A" * 43 + "="}) == 401
    assert replay(**{"webhook-timestamp": str(int(delivered.headers["webhook-timestamp"]) - 3600)}) == 401
    assert capsys.readouterr().out == ""
