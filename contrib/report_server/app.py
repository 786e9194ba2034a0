"""The Starlette app of the reference report server: the Hybiscus endpoints, mounted as README says."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterable
from typing import cast

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hybiscus_webhooks import WebhooksMiddleware

from .auth import ApiKeyAuth
from .pipeline import Pipeline
from .service import ApiError, ReportService, field_required


def create_app(
    pipeline: Pipeline, *, api_keys: Iterable[str], on_shutdown: Callable[[], None] | None = None
) -> Starlette:
    """A new app queuing renders on ``pipeline``; ``on_shutdown`` runs when the server stops."""
    service = ReportService(pipeline)

    async def submit(request: Request) -> Response:
        # WebhooksMiddleware has parsed the body: request.state.report is it when it is a JSON
        # object, request.state.webhooks what it validated.
        report = request.state.report
        if report is None:
            try:
                report = json.loads(await request.body())  # Only to say what is wrong with it.
            except (ValueError, RecursionError):
                problem = {"loc": ["body"], "msg": "The body is not valid JSON.", "type": "json_invalid"}
                raise ApiError(422, [problem]) from None
        answer = await run_in_threadpool(service.submit, report, webhooks=request.state.webhooks)
        return JSONResponse(answer)

    async def task_status(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(service.status, _task_id(request)))

    async def report(request: Request) -> Response:
        task_id = _task_id(request)
        pdf = await run_in_threadpool(service.pdf, task_id)
        disposition = 'inline; filename="report-%s.pdf"' % task_id
        return Response(pdf, media_type="application/pdf", headers={"Content-Disposition": disposition})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            await run_in_threadpool(on_shutdown)

    return Starlette(
        routes=[
            Route("/api/v1/build-report", submit, methods=["POST"]),
            Route("/api/v1/preview-report", submit, methods=["POST"]),
            Route("/api/v1/get-task-status", task_status, methods=["GET"]),
            Route("/api/v1/get-report", report, methods=["GET"]),
        ],
        middleware=[
            # The first is the outermost: no key, no look at the report.
            Middleware(ApiKeyAuth, keys=api_keys),
            Middleware(WebhooksMiddleware),
        ],
        exception_handlers={ApiError: api_error},
        lifespan=lifespan,
    )


def _task_id(request: Request) -> str:
    task_id = request.query_params.get("task_id")
    if not task_id:
        raise field_required("query", "task_id")
    return task_id


async def api_error(request: Request, exc: Exception) -> Response:
    error = cast(ApiError, exc)  # Registered for ApiError only.
    return JSONResponse({"detail": error.detail}, status_code=error.status)
