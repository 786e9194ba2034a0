from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hybiscus_webhooks.testing import ReceivedRequest, Receiver

#: What the receiver answers when it is failing on purpose: a status the sender retries.
FAIL_STATUS = 503


@dataclass(frozen=True)
class Arrival:
    """One webhook as the receiver saw it. ``token`` says whether its Bearer token was the expected one."""

    at: float
    path: str
    event: str | None
    task_id: str | None
    url: str | None
    token: str  # "matched", "wrong", "missing" or "not checked"
    status: int
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)

    def line(self) -> str:
        when = datetime.fromtimestamp(self.at).isoformat(sep=" ", timespec="milliseconds")
        if self.event is None:
            what = "not a webhook body (%d bytes) on %s" % (len(self.body), self.path)
        else:
            what = "%s task_id=%s url=%s" % (self.event, self.task_id, self.url)
        return "%s %s token=%s -> %d" % (when, what, self.token, self.status)

    def as_json(self) -> str:
        return json.dumps({
            "at": self.at, "path": self.path, "event": self.event, "task_id": self.task_id, "url": self.url,
            "token": self.token, "status": self.status, "headers": self.headers,
            "body": self.body.decode("utf-8", "replace"),
        })


class WebhookReceiver:
    """An HTTP server that takes webhooks on any path, answering 204, or 503 while told to fail.

    Built on hybiscus_webhooks.testing.Receiver, which does the serving and recording; this adds
    the failing, the token check and the reading of webhook bodies.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        fail_first: int = 0,
        fail_always: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if fail_first < 0:
            raise ValueError("fail_first must be 0 or more, got %d." % fail_first)
        self.token = token
        self._receiver = Receiver(
            [FAIL_STATUS] * fail_first, default=FAIL_STATUS if fail_always else 204, host=host, port=port
        )
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        return self._receiver.url

    def start(self) -> WebhookReceiver:
        self._receiver.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._receiver.stop()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def arrivals(self) -> Iterator[Arrival]:
        """Every webhook in the order it came, waiting for the next one until ``stop()``."""
        seen = 0
        while not self._stopped.is_set():
            try:
                # A bounded wait, so that a stop() is noticed within a second.
                requests = self._receiver.wait_for(seen + 1, timeout=1.0)
            except TimeoutError:
                continue
            for request in requests[seen:]:
                yield self.describe(request)
            seen = len(requests)

    def describe(self, request: ReceivedRequest) -> Arrival:
        try:
            body = json.loads(request.body)
        except ValueError:
            body = None
        fields = body if isinstance(body, dict) else {}
        return Arrival(
            at=request.at, path=request.path, event=_text(fields.get("event")), task_id=_text(fields.get("task_id")),
            url=_text(fields.get("url")), token=self._judge(request.headers.get("authorization")),
            status=request.status, headers=request.headers, body=request.body,
        )

    def _judge(self, authorization: str | None) -> str:
        if self.token is None:
            return "not checked"
        if authorization is None:
            return "missing"
        expected = ("Bearer %s" % self.token).encode()
        return "matched" if hmac.compare_digest(authorization.encode("latin-1", "replace"), expected) else "wrong"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
