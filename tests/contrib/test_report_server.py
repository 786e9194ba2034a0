"""The report server's endpoints, on both the Starlette and the FastAPI app, with an in-process worker."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import pypdf
import pytest

from hybiscus_webhooks.testing import Receiver
from hybiscus_webhooks_contrib.report_server import Pipeline, Task, create_app
from hybiscus_webhooks_contrib.report_server.fastapi_app import create_fastapi_app

from .inprocess import RENDER_QUEUE, REPORT_URL, Client, run_worker_until_idle

KEY = "k" * 43


def a_report(title: str = "Quarterly report", webhooks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    report: dict[str, Any] = {
        "type": "Report",
        "options": {"report_title": title, "report_byline": "By the tests"},
        "components": [{"type": "Section", "options": {"section_title": "Sales"},
                        "components": [{"type": "Text", "options": {"text": "Up 4%."}}]}],
    }
    if webhooks is not None:
        report["config"] = {"webhooks": webhooks}
    return report


@pytest.fixture(params=["starlette", "fastapi"])
def client(request: pytest.FixtureRequest, pipeline: Pipeline) -> Client:
    factory = create_app if request.param == "starlette" else create_fastapi_app
    return Client(factory(pipeline, api_keys=["another-key", KEY]), headers={"X-API-KEY": KEY})


def submit(client: Client, report: Any, path: str = "/api/v1/build-report") -> str:
    response = client.post(path, json_body=report)
    assert response.status == 200, response.body
    answer = response.json()
    assert answer == {"task_id": answer["task_id"], "status": "QUEUED"}
    assert uuid.UUID(answer["task_id"]).version == 4
    return str(answer["task_id"])


def status(client: Client, task_id: str) -> dict[str, Any]:
    response = client.get("/api/v1/get-task-status", params={"task_id": task_id})
    assert response.status == 200, response.body
    return dict(response.json())


def test_a_report_is_queued_built_served_and_announced(
    client: Client, pipeline: Pipeline, receiver: Receiver
) -> None:
    task_id = submit(client, a_report(webhooks=[{"url": receiver.url + "/hook", "auth_header": "s3cret"}]))
    assert status(client, task_id) == {"task_id": task_id, "status": "QUEUED", "error_message": None}

    run_worker_until_idle(pipeline)

    assert status(client, task_id) == {"task_id": task_id, "status": "SUCCESS", "error_message": None}
    response = client.get("/api/v1/get-report", params={"task_id": task_id})
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    text = pypdf.PdfReader(io.BytesIO(response.body)).pages[0].extract_text()
    assert "Quarterly report" in text and "Sales" in text
    [webhook] = receiver.wait_for(1)
    assert webhook.path == "/hook"
    assert webhook.headers["authorization"] == "Bearer s3cret"
    assert json.loads(webhook.body) == {
        "event": "report.completed", "task_id": task_id, "url": REPORT_URL.format(task_id=task_id),
    }


def test_preview_report_answers_like_build_report(client: Client, pipeline: Pipeline) -> None:
    task_id = submit(client, a_report(), path="/api/v1/preview-report")
    run_worker_until_idle(pipeline)
    assert status(client, task_id)["status"] == "SUCCESS"


def test_a_report_that_cannot_be_rendered_fails_and_sends_report_failed(
    client: Client, pipeline: Pipeline, receiver: Receiver
) -> None:
    report = a_report(webhooks=[{"url": receiver.url + "/hook"}])
    report["components"].append({"type": "Hologram"})
    task_id = submit(client, report)

    run_worker_until_idle(pipeline)

    task = status(client, task_id)
    assert task["status"] == "FAILED"
    assert "components[1]" in task["error_message"] and "'Hologram'" in task["error_message"]
    response = client.get("/api/v1/get-report", params={"task_id": task_id})
    assert response.status == 409
    assert "failed" in response.json()["detail"]
    [webhook] = receiver.wait_for(1)
    assert json.loads(webhook.body)["event"] == "report.failed"
    assert "authorization" not in webhook.headers


def test_a_render_that_crashes_for_good_marks_the_task_failed(
    client: Client, pipeline: Pipeline, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(report: Any) -> bytes:
        raise RuntimeError("out of ink")

    monkeypatch.setattr("hybiscus_webhooks_contrib.report_server.pipeline.render_pdf", crash)
    pipeline.store.put(Task("crashing-task", "QUEUED"), report=a_report(webhooks=[{"url": receiver.url}]))
    # Sent by hand without retries, so that the crash is final at once.
    pipeline.render.send_with_options(args=("crashing-task",), max_retries=0)

    run_worker_until_idle(pipeline)

    assert status(client, "crashing-task") == {
        "task_id": "crashing-task", "status": "FAILED", "error_message": "The report could not be rendered.",
    }
    [webhook] = receiver.wait_for(1)
    assert json.loads(webhook.body)["event"] == "report.failed"


def test_no_auth_header_reaches_the_logs_when_a_render_fails(
    client: Client, pipeline: Pipeline, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    report = a_report(webhooks=[{"url": receiver.url, "auth_header": "do-not-log-me"}])
    report["components"].append({"type": "Hologram"})
    caplog.set_level("DEBUG")
    submit(client, report)

    run_worker_until_idle(pipeline)

    assert "UnrenderableReport" in caplog.text  # The failure was logged...
    assert "do-not-log-me" not in caplog.text  # ...without the customer's secret.
    assert receiver.wait_for(1)[0].headers["authorization"] == "Bearer do-not-log-me"


def test_get_report_before_the_report_is_built_is_409(client: Client) -> None:
    task_id = submit(client, a_report())
    response = client.get("/api/v1/get-report", params={"task_id": task_id})
    assert response.status == 409
    assert "not built yet (status QUEUED)" in response.json()["detail"]


@pytest.mark.parametrize("path", ["/api/v1/get-task-status", "/api/v1/get-report"])
def test_an_unknown_task_is_404(client: Client, path: str) -> None:
    response = client.get(path, params={"task_id": str(uuid.uuid4())})
    assert response.status == 404
    assert "No task" in response.json()["detail"]


@pytest.mark.parametrize("path", ["/api/v1/get-task-status", "/api/v1/get-report"])
def test_a_missing_task_id_is_422(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["query", "task_id"] and problem["type"] == "missing"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ('{"type": "Report"', ["body"]),
        ("[1, 2]", ["body"]),
        ('{"options": {}}', ["body", "type"]),
        ('{"type": "Report", "components": {}}', ["body", "components"]),
    ],
)
def test_a_body_that_is_no_report_is_422(client: Client, pipeline: Pipeline, body: str, loc: list[str]) -> None:
    response = client.post("/api/v1/build-report", content=body.encode())
    assert response.status == 422
    assert loc in [problem["loc"][: len(loc)] for problem in response.json()["detail"]]
    assert pipeline.broker.queues[RENDER_QUEUE].qsize() == 0  # type: ignore[attr-defined]


def test_invalid_webhooks_are_422_from_the_middleware_and_nothing_is_queued(
    client: Client, pipeline: Pipeline
) -> None:
    response = client.post("/api/v1/build-report", json_body=a_report(webhooks=[{"url": "ftp://example.com/x"}]))
    assert response.status == 422
    assert response.json()["detail"][0]["loc"] == ["body", "config", "webhooks", 0, "url"]
    assert pipeline.broker.queues[RENDER_QUEUE].qsize() == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("headers", [{}, {"X-API-KEY": "wrong"}, {"X-API-KEY": KEY[:-1]}])
@pytest.mark.parametrize("path", ["/api/v1/build-report", "/api/v1/get-task-status?task_id=x"])
def test_without_a_valid_key_every_endpoint_is_401(client: Client, headers: dict[str, str], path: str) -> None:
    del client.headers["X-API-KEY"]
    # Invalid webhooks too: the key is checked before the report is looked at.
    report = a_report(webhooks=[{"url": "not a url"}])
    if "build" in path:
        response = client.post(path, json_body=report, headers=headers)
    else:
        response = client.get(path, headers=headers)
    assert response.status == 401
    assert "API key" in response.json()["detail"]


def test_the_key_may_come_in_the_query(client: Client, pipeline: Pipeline) -> None:
    task_id = submit(client, a_report())
    run_worker_until_idle(pipeline)
    del client.headers["X-API-KEY"]
    response = client.get("/api/v1/get-report", params={"task_id": task_id, "api_key": KEY})
    assert response.status == 200
    assert response.body.startswith(b"%PDF-")


def test_a_broker_that_cannot_take_the_render_is_503(
    client: Client, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker away")

    monkeypatch.setattr(pipeline.broker, "enqueue", refuse)
    response = client.post("/api/v1/build-report", json_body=a_report())
    assert response.status == 503
    assert "try again" in response.json()["detail"]
