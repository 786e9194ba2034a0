"""The Starlette report server measured by the middleware benchmark, in three variants.

- ``bare``: no middleware; the route parses the body.
- ``middleware``: with ``WebhooksMiddleware``; the route takes the report the middleware parsed
  (``request.state.report``), as the README advises, so the body is parsed once.
- ``naive``: with ``WebhooksMiddleware``; the route parses the body again with ``request.json()``.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from hybiscus_webhooks import WebhooksMiddleware

VARIANTS = ("bare", "middleware", "naive")
SUBMIT = "/api/v1/build-report"
STATUS = "/api/v1/get-task-status"


def make_app(variant: str) -> ASGIApp:
    if variant not in VARIANTS:
        raise ValueError("variant must be one of %s, got %r" % (", ".join(VARIANTS), variant))
    use_state = variant == "middleware"

    async def build_report(request: Request) -> JSONResponse:
        report: Any = getattr(request.state, "report", None) if use_state else None
        if report is None:
            report = await request.json()
        if not isinstance(report, dict) or report.get("type") != "Report":
            return JSONResponse({"detail": "Not a Report definition."}, status_code=422)
        return JSONResponse({"task_id": str(uuid.uuid4()), "status": "QUEUED"})

    async def task_status(request: Request) -> JSONResponse:
        return JSONResponse({"task_id": request.query_params.get("task_id"), "status": "SUCCESS",
                             "error_message": None})

    app = Starlette(routes=[Route(SUBMIT, build_report, methods=["POST"]), Route(STATUS, task_status)])
    if variant != "bare":
        app.add_middleware(WebhooksMiddleware)
    return app


# Factories for ``uvicorn --factory bench.apps:bare`` and the like.
def bare() -> ASGIApp:
    return make_app("bare")


def middleware() -> ASGIApp:
    return make_app("middleware")


def naive() -> ASGIApp:
    return make_app("naive")


def every_variant() -> ASGIApp:
    """Every variant in one app, under ``/<variant>/...``: one process serves them all, so that all are
    measured on the same core, heap and interpreter. Run it with ``--lifespan off``."""
    built = {variant: make_app(variant) for variant in VARIANTS}

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        _, variant, rest = scope["path"].split("/", 2)
        path = "/" + rest
        await built[variant]({**scope, "path": path, "raw_path": path.encode()}, receive, send)

    return dispatch
