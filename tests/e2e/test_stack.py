"""A report submitted over HTTP to uvicorn, rendered by a `dramatiq` worker, announced to a receiver process."""

from __future__ import annotations

import io
import itertools
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pypdf
import pytest

from ..docs_blocks import commands, markdown_block
from ..processes import Process, start_process  # noqa: F401 - fixture
from ..services import namespace, redis_url  # noqa: F401 - fixtures
from .conftest import Stack, _forget


def report(title: str, webhooks: list[dict[str, str]], *, renderable: bool = True) -> dict[str, Any]:
    components: list[dict[str, Any]] = [
        {"type": "Section", "options": {"section_title": "Numbers"}, "components": [
            {"type": "Text", "options": {"text": "All up."}},
            {"type": "Table", "options": {"headings": ["Region", "Units"], "rows": [["North", 12]]}},
        ]},
    ]
    if not renderable:
        components.append({"type": "Hologram"})
    return {"type": "Report", "options": {"report_title": title}, "config": {"webhooks": webhooks},
            "components": components}


def webhooks_of(receiver_lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in receiver_lines]


@pytest.mark.parametrize("factory", ["starlette_app", "fastapi_app"])
def test_a_report_ends_in_the_seeds_webhook_a_pdf_and_an_unrenderable_one_in_report_failed(
    stack: Stack, factory: str
) -> None:
    receiver, url = stack.receiver()
    stack.server(factory)
    with_token = {"url": url + "/with-token", "auth_header": "tok-123"}
    without_token = {"url": url + "/without-token"}
    built = stack.submit(report("End-to-end quarterly", [with_token, without_token]))
    failing = stack.submit(report("Has a hologram", [with_token], renderable=False))
    # No worker yet, so both are still waiting.
    assert stack.status(built) == {"task_id": built, "status": "QUEUED", "error_message": None}
    assert stack.status(failing)["status"] == "QUEUED"

    stack.worker()
    arrived = webhooks_of(receiver.wait_for(r'"event": "report\.', count=3, timeout=60))

    by_path_and_task = {(webhook["path"], webhook["task_id"]): webhook for webhook in arrived}
    assert set(by_path_and_task) == {("/with-token", built), ("/without-token", built), ("/with-token", failing)}
    for (path, task_id), webhook in by_path_and_task.items():
        event = "report.completed" if task_id == built else "report.failed"
        # The seed: exactly these keys in this order, and the URL of the server's own get-report.
        report_url = "%s/api/v1/get-report?task_id=%s" % (stack.base_url, task_id)
        body = json.loads(webhook["body"])
        assert list(body.items()) == [("event", event), ("task_id", task_id), ("url", report_url)]
        assert webhook["headers"]["content-type"] == "application/json"
        if path == "/with-token":
            assert webhook["headers"]["authorization"] == "Bearer tok-123"
        else:
            assert "authorization" not in webhook["headers"]
        assert webhook["status"] == 204

    assert stack.status(built) == {"task_id": built, "status": "SUCCESS", "error_message": None}
    failed = stack.status(failing)
    assert failed["status"] == "FAILED" and "unknown component type 'Hologram'" in failed["error_message"]

    pdf = stack.get_report(built)
    assert pdf.status == 200 and pdf.headers["Content-Type"] == "application/pdf"
    assert "End-to-end quarterly" in pypdf.PdfReader(io.BytesIO(pdf.data)).pages[0].extract_text()
    assert stack.get_report(failing).status == 409


def test_two_workers_deliver_200_reports_times_3_webhooks_each_exactly_once(stack: Stack) -> None:
    receiver, url = stack.receiver()
    stack.server()
    # Verbose: a successful delivery is logged at DEBUG.
    workers = [stack.worker("worker-1", verbose=True), stack.worker("worker-2", verbose=True)]
    started = time.monotonic()

    webhooks = [{"url": "%s/hook/%d" % (url, k), "auth_header": "t%d" % k} for k in range(3)]
    tasks = [stack.submit(report("Load %d" % n, webhooks)) for n in range(200)]
    submitted = time.monotonic() - started
    arrived = webhooks_of(receiver.wait_for(r'"event": "report\.completed"', count=600, timeout=240))
    elapsed = time.monotonic() - started

    counts = Counter((webhook["task_id"], webhook["path"]) for webhook in arrived)
    assert set(counts) == {(task, "/hook/%d" % k) for task in tasks for k in range(3)}
    assert set(counts.values()) == {1}
    assert len({webhook["headers"]["webhook-id"] for webhook in arrived}) == 600
    # A worker logs a delivery once it has the answer, maybe after the receiver printed it:
    # a graceful stop lets every log line out.
    for worker in workers:
        worker.stop()
    # No attempt failed, so no retry is on its way to deliver something twice later.
    for worker in workers:
        assert not worker.matching(r"Attempt \d+ of .* failed|Gave up|Traceback")
    delivered = [len(worker.matching(r"Delivered report\.completed")) for worker in workers]
    assert sum(delivered) == 600 and min(delivered) > 0, delivered
    print("\n%s: 200 reports submitted in %.1f s; 600 webhooks delivered %.1f s after the first submission "
          "(%.0f/s); per worker: %s" % (stack.broker_url.split(":")[0], submitted, elapsed, 600 / elapsed, delivered))


def test_the_commands_of_the_contrib_readme_serve_a_report(
    namespace: str, redis_url: str, start_process: Callable[..., Process], tmp_path: Path  # noqa: F811
) -> None:
    """Its export, uvicorn and dramatiq lines as written, with a free port instead of 8000, the test's own
    namespace (so that its keys can be removed), and webhooks allowed to reach the receiver on loopback."""
    stack = Stack(namespace, redis_url, redis_url, start_process, tmp_path)
    env = {"REPORT_SERVER_NAMESPACE": namespace, "REPORT_SERVER_BASE_URL": stack.base_url,
           "REPORT_SERVER_ALLOW_PRIVATE_DESTINATIONS": "true"}
    receiver, url = stack.receiver()
    try:
        for argv in commands(markdown_block("contrib/README.md", "contrib-report-server").code):
            if argv[0] == "export":
                env.update(argument.split("=", 1) for argument in argv[1:])
                continue
            assert argv[-1] == "&" and argv[0] in ("uvicorn", "dramatiq"), argv
            arguments = [str(stack.port) if previous == "--port" else argument
                         for previous, argument in itertools.pairwise(argv[:-1])]
            if argv[0] == "dramatiq":
                arguments += ["--processes", "1", "--threads", "2"]  # Kind to a shared machine.
            process = start_process(argv[0], [sys.executable, "-m", argv[0], *arguments], env=env)
            stack.processes.append(process)
            process.wait_for("Uvicorn running on" if argv[0] == "uvicorn" else "is ready for action")
        assert env["REPORT_SERVER_BROKER_URL"] == redis_url and env["REPORT_SERVER_API_KEYS"] == "change-me"

        answer = stack.http.request("POST", stack.base_url + "/api/v1/build-report",
                                    body=json.dumps(report("From the README", [{"url": url + "/hook"}])).encode(),
                                    headers={"X-API-KEY": "change-me", "Content-Type": "application/json"})
        assert answer.status == 200, answer.data
        task_id = json.loads(answer.data)["task_id"]
        [webhook] = webhooks_of(receiver.wait_for(r'"event": "report\.completed"', timeout=60))
        assert json.loads(webhook["body"])["task_id"] == task_id
    finally:
        for process in reversed(stack.processes):
            process.stop()
        _forget(namespace, redis_url, None)
