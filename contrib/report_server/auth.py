from __future__ import annotations

import hmac
from collections.abc import Iterable
from urllib.parse import parse_qsl

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send


class ApiKeyAuth:
    """Lets a request through with a known key in ``X-API-KEY`` or ``?api_key=``; 401 otherwise.

    Mounted outside WebhooksMiddleware, so that a request without a key learns nothing about
    the validity of its report.
    """

    def __init__(self, app: ASGIApp, *, keys: Iterable[str], public_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.keys = tuple(key.encode() for key in keys)
        if not self.keys:
            raise ValueError("ApiKeyAuth needs at least one key, or every request would get 401.")
        self.public_paths = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public_paths:
            await self.app(scope, receive, send)
            return
        given = _given_key(scope)
        # Every key is compared, in constant time, so timing tells nothing about which almost matched.
        if given is not None and sum(hmac.compare_digest(given, key) for key in self.keys):
            await self.app(scope, receive, send)
            return
        detail = "Missing or invalid API key: send it in the X-API-KEY header or the api_key query parameter."
        await JSONResponse({"detail": detail}, status_code=401)(scope, receive, send)


def _given_key(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"x-api-key":
            key: bytes = value
            return key
    query: bytes = scope.get("query_string", b"")
    for name, text in parse_qsl(query.decode("latin-1"), encoding="latin-1"):
        if name == "api_key":
            return text.encode("latin-1")
    return None
