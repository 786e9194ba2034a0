"""Calls an ASGI app in process, recording what it reads and answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    receive_calls: int = 0
    messages: list[Message] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    app: ASGIApp,
    method: str = "POST",
    path: str = "/api/v1/build-report",
    body: bytes = b"",
    *,
    chunks: Iterable[bytes] | None = None,
    headers: Iterable[tuple[bytes, bytes]] | None = None,
    content_length: bool = True,
    scope_type: str = "http",
    query_string: bytes = b"",
) -> Answer:
    parts = list(chunks) if chunks is not None else [body]
    raw_headers = list(headers or [(b"content-type", b"application/json")])
    if content_length:
        raw_headers.append((b"content-length", str(sum(map(len, parts))).encode()))
    scope = {
        "type": scope_type, "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query_string, "root_path": "",
        "headers": raw_headers, "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }
    incoming: list[Message] = [
        {"type": "http.request", "body": part, "more_body": index < len(parts) - 1} for index, part in enumerate(parts)
    ]
    answer = Answer(status=0, headers={}, body=b"")

    async def receive() -> Message:
        answer.receive_calls += 1
        if incoming:
            return incoming.pop(0)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        answer.messages.append(message)
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = {name.decode(): value.decode() for name, value in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            answer.body += message.get("body", b"")

    asyncio.run(app(scope, receive, send))
    return answer
