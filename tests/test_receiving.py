"""The receiver helper: our real deliveries into a real uvicorn server, and each rule in process."""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import uvicorn
from dramatiq.brokers.stub import StubBroker
from freezegun import freeze_time
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hybiscus_webhooks import ImproperlyConfigured, Webhook, records, settings, signing
from hybiscus_webhooks.delivery import COMPLETED, send
from hybiscus_webhooks.receiving import (
    DONE,
    IN_PROGRESS,
    NEW,
    DuplicateStore,
    MemoryDuplicates,
    ReceivedWebhook,
    RedisDuplicates,
    WebhookVerifier,
)
from hybiscus_webhooks.records import DELIVERED, MemoryRecords
from hybiscus_webhooks.testing import DramatiqClock

from .asgi import call
from .conftest import REPORT_URL, Enqueued, require_service, unique
from .test_signing import SECRET_A, SECRET_B

EXAMPLE = Path(__file__).parent.parent / "contrib" / "receiving_example.py"
QUEUE = "hybiscus_webhooks"
BODY = b'{"event":"report.completed","task_id":"t-1","url":"https://r.example/get-report?task_id=t-1"}'
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """uvicorn on a loopback socket bound first, so requests queue in its backlog until it serves them."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % listener.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        listener.close()


def load_example(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET_A)
    spec = importlib.util.spec_from_file_location("receiving_example_under_test", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_handles_our_signed_webhook_once_even_when_it_comes_again(
    stub_broker: StubBroker, start_worker: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    example = load_example(monkeypatch)
    memory = MemoryRecords()
    records.use(memory)
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, SIGNING_SECRETS=[SECRET_A])
    try:
        with serve(example.app) as url:
            webhook = Webhook(url + "/hooks/reports", "tok_example")
            sent = send(COMPLETED, "task-x1", webhook, broker=stub_broker)
            start_worker(stub_broker)
            stub_broker.join(QUEUE, fail_fast=False)
            assert send(COMPLETED, "task-x1", webhook, broker=stub_broker) == sent  # A redelivery: same id.
            stub_broker.join(QUEUE, fail_fast=False)
    finally:
        records.use(None)
    [handled] = example.handled
    assert (handled.id, handled.event, handled.task_id) == (sent, COMPLETED, "task-x1")
    [record] = memory.for_task("task-x1")
    assert record.state == DELIVERED and [a.status for a in record.attempts] == [204, 204]


def test_a_failed_handling_leaves_the_id_free_for_the_retry(
    stub_broker: StubBroker, start_worker: Any, enqueued: Enqueued, clock: DramatiqClock,
) -> None:
    settings.configure(REPORT_URL=REPORT_URL, ALLOW_PRIVATE_DESTINATIONS=True, SIGNING_SECRETS=[SECRET_B, SECRET_A])
    verifier = WebhookVerifier([SECRET_A], auth_header="tok_retry")
    calls: list[str] = []

    async def handler(request: Request, webhook: ReceivedWebhook) -> Response:
        calls.append(webhook.id)
        return Response(status_code=503 if len(calls) == 1 else 200)

    app = Starlette(routes=[Route("/hook", verifier.endpoint(handler), methods=["POST"])])
    with serve(app) as url:
        send(COMPLETED, "task-x2", Webhook(url + "/hook", "tok_retry"), broker=stub_broker)
        start_worker(stub_broker)
        clock.now = enqueued.wait_for_eta(1) / 1000
        stub_broker.join(QUEUE, fail_fast=False)
    assert len(calls) == 2 and calls[0] == calls[1]
    assert verifier.duplicates.claim(calls[0], lease=60) == DONE
    assert len(enqueued.etas) == 1


def signed(*secrets: str, body: bytes = BODY, webhook_id: str = "msg_r1") -> list[tuple[bytes, bytes]]:
    parsed = signing.parse_secrets("s", list(secrets))
    values = signing.headers(parsed, webhook_id, datetime.now(tz=timezone.utc).timestamp(), body)
    return [(name.encode(), value.encode()) for name, value in values.items()]


def context_manager_app(verifier: WebhookVerifier, seen: list[ReceivedWebhook]) -> Starlette:
    async def hook(request: Request) -> Response:
        async with verifier.receive(request) as webhook:
            seen.append(webhook)
        return Response(status_code=204)

    return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


@freeze_time(NOW)
def test_a_duplicate_is_answered_2xx_and_flagged() -> None:
    seen: list[ReceivedWebhook] = []
    app = context_manager_app(WebhookVerifier([SECRET_A]), seen)
    for _ in range(2):
        assert call(app, path="/hook", body=BODY, headers=signed(SECRET_A)).status == 204
    assert [webhook.duplicate for webhook in seen] == [False, True]
    assert seen[0].url == "https://r.example/get-report?task_id=t-1"
    assert seen[0].timestamp == int(NOW.timestamp())


@pytest.mark.parametrize(("headers", "body", "status", "detail"), [
    (lambda: [], BODY, 401, b"headers are required"),
    (lambda: signed(SECRET_B), BODY, 401, b"No webhook-signature matches"),
    (lambda: signed(SECRET_A), BODY.replace(b"t-1", b"t-9"), 401, b"No webhook-signature matches"),
    (lambda: signed(SECRET_A, body=b"[1, 2]"), b"[1, 2]", 400, b"not a JSON object"),
    (lambda: signed(SECRET_A, body=b'{"event": 1, "task_id": "t", "url": "u"}'),
     b'{"event": 1, "task_id": "t", "url": "u"}', 400, b"must be strings"),
])
@freeze_time(NOW)
def test_bad_webhooks_are_refused_and_never_handled(headers: Any, body: bytes, status: int, detail: bytes) -> None:
    seen: list[ReceivedWebhook] = []
    answer = call(context_manager_app(WebhookVerifier([SECRET_A]), seen), path="/hook", body=body, headers=headers())
    assert answer.status == status and detail in answer.body
    assert seen == []


def test_a_stale_timestamp_is_refused() -> None:
    seen: list[ReceivedWebhook] = []
    app = context_manager_app(WebhookVerifier([SECRET_A]), seen)
    with freeze_time(NOW) as frozen:
        headers = signed(SECRET_A)
        frozen.tick(timedelta(minutes=5, seconds=1))
        answer = call(app, path="/hook", body=BODY, headers=headers)
    assert answer.status == 401 and b"more than 300 seconds" in answer.body and seen == []


@freeze_time(NOW)
def test_the_bearer_token_is_checked_when_given() -> None:
    seen: list[ReceivedWebhook] = []
    app = context_manager_app(WebhookVerifier([SECRET_A], auth_header="tok_right"), seen)
    wrong = signed(SECRET_A) + [(b"authorization", b"Bearer tok_wrong")]
    assert call(app, path="/hook", body=BODY, headers=wrong).status == 401
    right = signed(SECRET_A) + [(b"authorization", b"Bearer tok_right")]
    assert call(app, path="/hook", body=BODY, headers=right).status == 204
    assert len(seen) == 1


@freeze_time(NOW)
def test_an_id_being_handled_elsewhere_gets_409_so_the_sender_retries() -> None:
    verifier = WebhookVerifier([SECRET_A])
    seen: list[ReceivedWebhook] = []
    assert verifier.duplicates.claim("msg_r1", lease=60) == NEW
    answer = call(context_manager_app(verifier, seen), path="/hook", body=BODY, headers=signed(SECRET_A))
    assert answer.status == 409 and seen == []


@freeze_time(NOW)
def test_an_exception_in_the_block_releases_the_id() -> None:
    verifier = WebhookVerifier([SECRET_A])

    async def hook(request: Request) -> Response:
        async with verifier.receive(request):
            raise RuntimeError("the database is down")

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    with pytest.raises(RuntimeError, match="database"):
        call(app, path="/hook", body=BODY, headers=signed(SECRET_A))
    assert verifier.duplicates.claim("msg_r1", lease=60) == NEW


def test_the_verifier_needs_good_secrets_and_never_shows_them() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"secrets\[1\] must be a string starting with 'whsec_'"):
        WebhookVerifier([SECRET_A, "not-a-secret"])
    with pytest.raises(ValueError, match="at least one"):
        WebhookVerifier([])
    assert SECRET_A[6:] not in repr(WebhookVerifier([SECRET_A], auth_header="tok_hidden"))
    assert "tok_hidden" not in repr(WebhookVerifier([SECRET_A], auth_header="tok_hidden"))


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    require_service("Redis", 6379)
    import redis

    prefix = unique("hw-test-received") + ":"
    yield prefix
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    for key in client.scan_iter(prefix + "*"):
        client.delete(key)
    client.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def memory_store(request: pytest.FixtureRequest) -> DuplicateStore:
    return MemoryDuplicates(retention=3600)


def redis_store(request: pytest.FixtureRequest) -> DuplicateStore:
    import redis

    return RedisDuplicates(redis.Redis.from_url("redis://127.0.0.1:6379/0"),
                           key_prefix=request.getfixturevalue("redis_prefix"), retention=3600)


@pytest.fixture(params=[memory_store, pytest.param(redis_store, marks=pytest.mark.redis)], ids=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> DuplicateStore:
    built: DuplicateStore = request.param(request)
    return built


def test_a_store_claims_finishes_and_releases(store: DuplicateStore) -> None:
    assert store.claim("msg_a", lease=30) == NEW
    assert store.claim("msg_a", lease=30) == IN_PROGRESS
    store.release("msg_a")
    assert store.claim("msg_a", lease=30) == NEW
    store.finish("msg_a")
    assert store.claim("msg_a", lease=30) == DONE
    assert store.claim("msg_b", lease=30) == NEW


@pytest.mark.redis
def test_redis_keys_expire_after_the_lease_then_the_retention(redis_prefix: str) -> None:
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    store = RedisDuplicates(client, key_prefix=redis_prefix, retention=3600)
    store.claim("msg_a", lease=30)
    assert 0 < client.pttl(redis_prefix + "msg_a") <= 30_000
    store.finish("msg_a")
    assert 30_000 < client.pttl(redis_prefix + "msg_a") <= 3_600_000


def test_memory_leases_run_out_and_memory_is_bounded() -> None:
    clock = FakeClock()
    store = MemoryDuplicates(max_entries=2, retention=100, clock=clock)
    assert store.claim("msg_a", lease=30) == NEW
    clock.now += 31  # The claimer died without releasing: the lease runs out.
    assert store.claim("msg_a", lease=30) == NEW
    store.finish("msg_a")
    clock.now += 101
    assert store.claim("msg_a", lease=30) == NEW  # Forgotten after the retention.
    store.claim("msg_b", lease=30)
    store.claim("msg_c", lease=30)
    assert len(store) == 2 and store.claim("msg_a", lease=30) == NEW  # msg_a was the oldest and went first.


@freeze_time(NOW)
def test_fastapi_uses_the_same_endpoint_and_context_manager() -> None:
    fastapi = pytest.importorskip("fastapi")
    verifier = WebhookVerifier([SECRET_A])
    seen: list[str] = []

    async def handler(request: Request, webhook: ReceivedWebhook) -> Response:
        seen.append("endpoint:" + webhook.task_id)
        return Response(status_code=204)

    app = fastapi.FastAPI()
    app.post("/endpoint")(verifier.endpoint(handler))

    @app.post("/block", status_code=204, response_model=None)  # FastAPI 0.110 would infer one from "-> None".
    async def block(request: Request) -> None:
        async with verifier.receive(request) as webhook:
            seen.append("block:%s" % webhook.duplicate)

    assert call(app, path="/endpoint", body=BODY, headers=signed(SECRET_A, webhook_id="msg_f1")).status == 204
    assert call(app, path="/block", body=BODY, headers=signed(SECRET_A, webhook_id="msg_f2")).status == 204
    assert call(app, path="/block", body=BODY, headers=signed(SECRET_A, webhook_id="msg_f2")).status == 204
    refused = call(app, path="/endpoint", body=BODY, headers=signed(SECRET_B, webhook_id="msg_f3"))
    assert refused.status == 401 and refused.json() == {"detail": "No webhook-signature matches a configured secret."}
    assert seen == ["endpoint:t-1", "block:False", "block:True"]


def test_importing_the_receiver_helper_has_no_side_effects() -> None:
    import subprocess

    code = ("import sys, hybiscus_webhooks.receiving, hybiscus_webhooks.settings as s;"
            "assert s._current is None and 'redis' not in sys.modules; print('clean')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60)
    assert result.stdout.strip() == "clean", result.stderr
