"""What the endpoints do, whichever framework serves them: the Starlette app and the FastAPI one share it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from hybiscus_webhooks import Webhook

from .pipeline import Pipeline
from .store import FAILED, QUEUED, SUCCESS, Task

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An answer other than 2xx, with a FastAPI-shaped ``detail``."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail


def field_required(location: str, name: str) -> ApiError:
    return ApiError(422, [{"loc": [location, name], "msg": "Field required", "type": "missing"}])


class ReportService:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def submit(self, report: Any, *, webhooks: Sequence[Webhook] = ()) -> dict[str, str]:
        """Queue ``report`` for rendering; ``webhooks`` are those WebhooksMiddleware validated, for the log."""
        problems = report_problems(report)
        if problems:
            raise ApiError(422, problems)
        task_id = str(uuid.uuid4())
        self.pipeline.store.put(Task(task_id, QUEUED), report=report)
        try:
            self.pipeline.render.send(task_id)
        except Exception as exc:  # redis-py's connection errors reach us unwrapped, pika's wrapped
            logger.error("Could not queue task %s: %s", task_id, type(exc).__name__)
            self.pipeline.store.put(Task(task_id, FAILED, "The report could not be queued."))
            raise ApiError(503, "The report could not be queued; try again shortly.") from exc
        logger.info("Queued task %s with %d webhooks.", task_id, len(webhooks))
        return {"task_id": task_id, "status": QUEUED}

    def status(self, task_id: str) -> dict[str, Any]:
        return self._task(task_id).as_json()

    def pdf(self, task_id: str) -> bytes:
        task = self._task(task_id)
        if task.status == FAILED:
            raise ApiError(409, "Task %s failed, so it has no report: %s" % (task_id, task.error_message))
        pdf = self.pipeline.store.get_pdf(task_id) if task.status == SUCCESS else None
        if pdf is None:
            raise ApiError(
                409, "The report of task %s is not built yet (status %s): poll get-task-status until SUCCESS."
                % (task_id, task.status),
            )
        return pdf

    def _task(self, task_id: str) -> Task:
        task = self.pipeline.store.get(task_id) if len(task_id) <= 64 else None
        if task is None:
            raise ApiError(404, "No task %r: it never existed or has expired." % task_id[:64])
        return task


def report_problems(report: Any) -> list[dict[str, Any]]:
    """What makes ``report`` no Report definition at all; the render judges the components."""
    if not isinstance(report, Mapping):
        return [{"loc": ["body"], "msg": "The body must be a JSON object: a Report definition.", "type": "dict_type"}]
    problems = []
    if report.get("type") != "Report":
        problems.append({"loc": ["body", "type"], "msg": "Must be 'Report'.", "type": "literal_error"})
    for name in ("options", "config"):
        if name in report and not isinstance(report[name], Mapping):
            problems.append({"loc": ["body", name], "msg": "Must be an object.", "type": "dict_type"})
    if "components" in report and not isinstance(report["components"], list):
        problems.append({"loc": ["body", "components"], "msg": "Must be a list.", "type": "list_type"})
    return problems
