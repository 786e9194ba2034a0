"""The same server as a FastAPI app: WebhooksMiddleware mounts on FastAPI as on any Starlette app."""

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Annotated, Any

from fastapi import Body, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from hybiscus_webhooks import WebhooksMiddleware

from .auth import ApiKeyAuth
from .pipeline import Pipeline
from .service import ApiError, ReportService

# No `from __future__ import annotations` here: FastAPI reads the annotations at runtime.

_DOCS = ("/docs", "/openapi.json")
# The whole body is the Report definition.
ReportBody = Annotated[dict[str, Any], Body()]


def create_fastapi_app(
    pipeline: Pipeline, *, api_keys: Iterable[str], on_shutdown: Callable[[], None] | None = None
) -> FastAPI:
    service = ReportService(pipeline)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            await run_in_threadpool(on_shutdown)

    app = FastAPI(title="Hybiscus-compatible report server", redoc_url=None, lifespan=lifespan)
    # Added last, so outermost: the key is checked before the report is looked at.
    app.add_middleware(WebhooksMiddleware)
    app.add_middleware(ApiKeyAuth, keys=api_keys, public_paths=_DOCS)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    # Plain `def` endpoints: FastAPI runs them in its thread pool, where blocking on Redis is fine.
    @app.post("/api/v1/build-report")
    def build_report(request: Request, report: ReportBody) -> dict[str, str]:
        return service.submit(report, webhooks=request.state.webhooks)

    @app.post("/api/v1/preview-report")
    def preview_report(request: Request, report: ReportBody) -> dict[str, str]:
        return service.submit(report, webhooks=request.state.webhooks)

    @app.get("/api/v1/get-task-status")
    def get_task_status(task_id: str) -> dict[str, Any]:
        return service.status(task_id)

    @app.get("/api/v1/get-report", response_class=Response)
    def get_report(task_id: str) -> Response:
        disposition = 'inline; filename="report-%s.pdf"' % task_id
        pdf = service.pdf(task_id)
        return Response(pdf, media_type="application/pdf", headers={"Content-Disposition": disposition})

    return app
