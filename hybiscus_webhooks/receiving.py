"""For receivers of these webhooks, in Starlette or FastAPI: verify the signature, drop duplicates by id.

Delivery is at least once, so a receiver sees the same ``webhook-id`` again after a retry whose
first try did arrive, or after a redelivery. ``WebhookVerifier.receive`` verifies a request and
claims its id; the work inside the ``async with`` block runs once per id::

    verifier = WebhookVerifier(["whsec_..."])

    async def hook(request):
        async with verifier.receive(request) as webhook:
            if not webhook.duplicate:
                await handle(webhook.event, webhook.task_id, webhook.url)
        return Response(status_code=204)

A bad signature raises ``HTTPException(401)``, a body that is not a webhook ``HTTPException(400)``,
and an id another request is handling right now ``HTTPException(409)`` so that the sender tries
again later. An exception inside the block releases the id, so the sender's retry is handled.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from .signing import DEFAULT_TOLERANCE, InvalidSignature, SigningSecret, parse_secrets, verify

if TYPE_CHECKING:
    import redis

#: What ``DuplicateStore.claim`` answers.
NEW = "new"
IN_PROGRESS = "in_progress"
DONE = "done"
#: Seconds an id is remembered once handled: longer than the sender's retries (about 2 h 8 min) and
#: Dramatiq's dead-letter TTL (7 days), within which an operator may redeliver.
DEFAULT_RETENTION = 8 * 24 * 3600.0


class DuplicateStore(ABC):
    """Remembers webhook ids: claimed while being handled, done once handled."""

    #: True if its calls do I/O, so the verifier runs them in a thread, off the event loop.
    blocking = False

    @abstractmethod
    def claim(self, webhook_id: str, *, lease: float) -> str:
        """Claim an id for ``lease`` seconds: NEW if it was free, IN_PROGRESS or DONE if not."""

    @abstractmethod
    def finish(self, webhook_id: str) -> None:
        """The id was handled: remember it as DONE."""

    @abstractmethod
    def release(self, webhook_id: str) -> None:
        """Handling the id failed: forget the claim so a retry is handled."""


class MemoryDuplicates(DuplicateStore):
    """Ids in this process's memory, the oldest forgotten first beyond ``max_entries``.

    Enough for one receiver process; several processes need a shared store such as ``RedisDuplicates``.
    """

    def __init__(
        self, *, max_entries: int = 100_000, retention: float = DEFAULT_RETENTION,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1, got %r." % (max_entries,))
        self.max_entries = max_entries
        self.retention = retention
        self.clock = clock
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, webhook_id: str, *, lease: float) -> str:
        now = self.clock()
        with self._lock:
            entry = self._entries.get(webhook_id)
            if entry is not None and entry[1] > now:
                return entry[0]
            self._set(webhook_id, IN_PROGRESS, now + lease)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            return NEW

    def finish(self, webhook_id: str) -> None:
        with self._lock:
            self._set(webhook_id, DONE, self.clock() + self.retention)

    def release(self, webhook_id: str) -> None:
        with self._lock:
            self._entries.pop(webhook_id, None)

    def _set(self, webhook_id: str, state: str, until: float) -> None:
        self._entries.pop(webhook_id, None)
        self._entries[webhook_id] = (state, until)

    def __len__(self) -> int:
        return len(self._entries)


class RedisDuplicates(DuplicateStore):
    """Ids in Redis, shared by every receiver process; each key expires on its own."""

    blocking = True

    def __init__(
        self, client: redis.Redis[Any], *, key_prefix: str = "hybiscus_webhooks:received:",
        retention: float = DEFAULT_RETENTION,
    ) -> None:
        self.client = client
        self.key_prefix = key_prefix
        self.retention = retention

    def claim(self, webhook_id: str, *, lease: float) -> str:
        key = self.key_prefix + webhook_id
        for _ in range(2):  # Once more if the key expired between SET and GET.
            if self.client.set(key, IN_PROGRESS, nx=True, px=max(1, int(lease * 1000))):
                return NEW
            state = self.client.get(key)
            if state is not None:
                return state.decode() if isinstance(state, bytes) else str(state)
        return IN_PROGRESS

    def finish(self, webhook_id: str) -> None:
        self.client.set(self.key_prefix + webhook_id, DONE, px=max(1, int(self.retention * 1000)))

    def release(self, webhook_id: str) -> None:
        self.client.delete(self.key_prefix + webhook_id)


@dataclass(frozen=True)
class ReceivedWebhook:
    """A verified webhook."""

    id: str
    event: str
    task_id: str
    url: str
    timestamp: int
    #: True when this id was already handled: answer 2xx and do nothing.
    duplicate: bool = False
    body: bytes = field(default=b"", repr=False)


class WebhookVerifier:
    """Verifies webhooks signed with any of ``secrets`` (``whsec_...``) and, with ``auth_header``, their
    ``Authorization: Bearer`` header; drops duplicates through ``duplicates`` (in memory by default)."""

    def __init__(
        self,
        secrets: Sequence[str | SigningSecret],
        *,
        auth_header: str | None = None,
        duplicates: DuplicateStore | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
        lease: float = 60.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.secrets = parse_secrets("secrets", secrets)
        if not self.secrets:
            raise ValueError("WebhookVerifier needs at least one 'whsec_...' secret.")
        self._expected_authorization = None if auth_header is None else ("Bearer %s" % auth_header).encode()
        self.duplicates = duplicates if duplicates is not None else MemoryDuplicates()
        self.tolerance = tolerance
        self.lease = lease
        # Looked up at each call, so a clock patched later (freezegun, in tests) is seen.
        self.clock = clock or (lambda: time.time())

    def __repr__(self) -> str:
        return "<WebhookVerifier with %d secret(s)>" % len(self.secrets)

    def verify(self, body: bytes, headers: Any) -> ReceivedWebhook:
        """Check the headers (a case-insensitive mapping such as Starlette's) and parse the body.

        Raises ``InvalidSignature``, or ``ValueError`` for a body that is not one of our webhooks.
        """
        if self._expected_authorization is not None:
            offered = (headers.get("authorization") or "").encode("latin-1", "replace")
            if not hmac.compare_digest(offered, self._expected_authorization):
                raise InvalidSignature("The Authorization header does not match.")
        webhook_id = verify(self.secrets, headers, body, now=self.clock(), tolerance=self.tolerance)
        try:
            payload = json.loads(body)
            fields = {name: payload[name] for name in ("event", "task_id", "url")}
        except (ValueError, TypeError, KeyError):
            raise ValueError("The body is not a JSON object with event, task_id and url.") from None
        if not all(isinstance(value, str) for value in fields.values()):
            raise ValueError("event, task_id and url must be strings.")
        return ReceivedWebhook(id=webhook_id, timestamp=int(headers["webhook-timestamp"]), body=body, **fields)

    @asynccontextmanager
    async def receive(self, request: Request) -> AsyncIterator[ReceivedWebhook]:
        """Verify ``request`` and claim its id for the block; see the module's docstring."""
        body = await request.body()
        try:
            webhook = self.verify(body, request.headers)
        except InvalidSignature as exc:
            raise HTTPException(status_code=401, detail=str(exc)) from None
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        state = await self._call(self.duplicates.claim, webhook.id, lease=self.lease)
        if state == DONE:
            yield replace(webhook, duplicate=True)
            return
        if state != NEW:
            raise HTTPException(status_code=409, detail="This webhook is being handled; try again later.")
        try:
            yield webhook
        except BaseException:
            await self._call(self.duplicates.release, webhook.id)
            raise
        await self._call(self.duplicates.finish, webhook.id)

    def endpoint(
        self, handler: Callable[[Request, ReceivedWebhook], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """A Starlette endpoint that calls ``handler(request, webhook)`` once per webhook id.

        Duplicates get 204 without calling it. An answer of 300 or more, like an exception,
        leaves the id free, so the sender's retry is handled.
        """

        async def endpoint(request: Request) -> Response:
            async with self.receive(request) as webhook:
                if webhook.duplicate:
                    return Response(status_code=204)
                response = await handler(request, webhook)
                if response.status_code >= 300:
                    raise _Unhandled(response)
                return response

        async def guarded(request: Request) -> Response:
            try:
                return await endpoint(request)
            except _Unhandled as unhandled:
                return unhandled.response

        guarded.__name__ = getattr(handler, "__name__", "webhook_endpoint")
        guarded.__doc__ = handler.__doc__
        return guarded

    async def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.duplicates.blocking:
            return await run_in_threadpool(method, *args, **kwargs)
        return method(*args, **kwargs)


class _Unhandled(Exception):
    """Carries a handler's failure answer out of the claim, which it releases."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response
