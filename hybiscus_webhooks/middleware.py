from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import settings
from .destinations import AddressPolicy, url_refusal
from .errors import InvalidWebhooks
from .schemas import load_webhooks, parse_report

#: Key of ``scope["state"]`` (``request.state.webhooks``) holding the validated webhooks.
STATE_KEY = "webhooks"
#: Key of ``scope["state"]`` (``request.state.report``) holding the parsed body, so the app need not parse it again.
REPORT_STATE_KEY = "report"


class WebhooksMiddleware:
    """Validates ``config.webhooks`` of each POST to the submission paths before the app sees it.

    ``app.add_middleware(WebhooksMiddleware)`` reads the settings; ``paths``, ``max_body_bytes``,
    ``max_webhooks`` and ``plan_check`` override ``SUBMISSION_PATHS``, ``MAX_BODY_BYTES``,
    ``MAX_WEBHOOKS`` and ``PLAN_CHECK``. Answers 422, 413 or 402 itself; otherwise the app receives the
    same bytes, and the validated webhooks in ``scope["state"]["webhooks"]``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        paths: Iterable[str] | None = None,
        max_body_bytes: int | None = None,
        max_webhooks: int | None = None,
        plan_check: Callable[[Scope], Any] | str | None = None,
    ) -> None:
        current = settings.get()
        self.app = app
        self.paths = frozenset(_argument("SUBMISSION_PATHS", "paths", paths, current))
        self.max_body_bytes: int = _argument("MAX_BODY_BYTES", "max_body_bytes", max_body_bytes, current)
        self.max_webhooks: int = _argument("MAX_WEBHOOKS", "max_webhooks", max_webhooks, current)
        self.plan_check = _argument("PLAN_CHECK", "plan_check", plan_check, current)
        # Only what a URL spells is judged here (an IP literal, http when https is required);
        # names are resolved and judged by the sender. The answer depends on the URL alone, and
        # customers send the same few: each is judged once, up to 1024.
        self.url_check = functools.lru_cache(maxsize=1024)(functools.partial(
            url_refusal,
            policy=AddressPolicy(
                allow_private=current.ALLOW_PRIVATE_DESTINATIONS, allowed_networks=current.ALLOWED_NETWORKS
            ),
            https_only=current.HTTPS_ONLY,
        ))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return

        if _declared_length(scope) > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return
        chunks = []
        size = 0
        more_body = True
        while more_body:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more_body = message.get("more_body", False)
            if size > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
        # bytes, not a bytearray: json.loads parses a bytearray about 15% slower (bench/, 200 KB).
        body = bytes(chunks[0]) if len(chunks) == 1 else b"".join(chunks)

        webhooks: tuple[Any, ...] = ()
        try:
            report = parse_report(bytes(body))
        except (ValueError, RecursionError):
            report = None  # Not JSON: the app answers that, not us.
        try:
            webhooks = load_webhooks(report, max_webhooks=self.max_webhooks, url_check=self.url_check)
        except InvalidWebhooks as exc:
            await JSONResponse({"detail": exc.problems}, status_code=422)(scope, receive, send)
            return
        if webhooks and self.plan_check is not None and not await _call(self.plan_check, scope):
            detail = "Webhooks are a paid-plan feature: this account's plan does not include them."
            await JSONResponse({"detail": detail}, status_code=402)(scope, receive, send)
            return

        scope = dict(scope)
        scope["state"] = {**scope.get("state", {}), STATE_KEY: webhooks,
                          REPORT_STATE_KEY: report if isinstance(report, dict) else None}
        await self.app(scope, _replay(body, receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = "Request body is larger than %d bytes." % self.max_body_bytes
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)


def _argument(setting: str, argument: str, value: Any, current: settings.Settings) -> Any:
    if value is None:
        return getattr(current, setting)
    return settings.DEFINITIONS[setting].parse(argument, value)


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


async def _call(check: Callable[[Scope], Any], scope: Scope) -> bool:
    answer = check(scope)
    if inspect.isawaitable(answer):
        answer = await answer
    return bool(answer)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the body once, then whatever the client sends next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
