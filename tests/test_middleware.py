from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hybiscus_webhooks import ImproperlyConfigured, Webhook, WebhooksMiddleware, settings

from .asgi import call

SECRET = "tok_9f8e7d6c5b4a"


def report(webhooks: Any = None, **config: Any) -> bytes:
    if webhooks is not None:
        config["webhooks"] = webhooks
    definition = {"type": "Report", "options": {"report_title": "Q3"}, "config": config, "components": []}
    return json.dumps(definition).encode()


def make_app(**middleware_options: Any) -> tuple[Starlette, list[dict[str, Any]]]:
    """A fresh app whose submission route echoes what it got; ``seen`` records every call."""
    seen: list[dict[str, Any]] = []

    async def build_report(request: Request) -> Response:
        body = await request.body()
        seen.append({"body": body, "webhooks": getattr(request.state, "webhooks", "missing")})
        parsed = getattr(request.state, "report", "missing")
        assert parsed in ("missing", None) or parsed == json.loads(body)
        return JSONResponse({"task_id": "t-1", "status": "QUEUED"})

    async def other(request: Request) -> Response:
        seen.append({"path": request.url.path})
        return Response("other")

    app = Starlette(routes=[
        Route("/api/v1/build-report", build_report, methods=["POST"]),
        Route("/api/v1/build-report", other, methods=["GET"]),
        Route("/api/v1/preview-report", build_report, methods=["POST"]),
        Route("/other", other, methods=["POST", "GET"]),
    ])
    app.add_middleware(WebhooksMiddleware, **middleware_options)
    return app, seen


def problems(answer: Any) -> list[tuple[list[Any], str]]:
    assert answer.status == 422, answer.body
    return [(problem["loc"], problem["type"]) for problem in answer.json()["detail"]]


LOC = ["body", "config", "webhooks"]

REJECTED = [
    pytest.param({"url": "x"}, [(LOC, "list_type")], id="webhooks-not-a-list"),
    pytest.param("https://a.example/h", [(LOC, "list_type")], id="webhooks-a-string"),
    pytest.param([{"url": "https://a.example/%d" % n} for n in range(4)], [(LOC, "too_many")], id="four-webhooks"),
    pytest.param(["https://a.example/h"], [(LOC + [0], "dict_type")], id="item-not-an-object"),
    pytest.param([{}], [(LOC + [0, "url"], "missing")], id="url-missing"),
    pytest.param([{"url": None}], [(LOC + [0, "url"], "null")], id="url-null"),
    pytest.param([{"url": 42}], [(LOC + [0, "url"], "string_type")], id="url-not-a-string"),
    pytest.param([{"url": "/hook"}], [(LOC + [0, "url"], "url_scheme")], id="url-relative"),
    pytest.param([{"url": "ftp://a.example/h"}], [(LOC + [0, "url"], "url_scheme")], id="url-ftp"),
    pytest.param([{"url": "javascript:alert(1)"}], [(LOC + [0, "url"], "url_scheme")], id="url-javascript"),
    pytest.param([{"url": "https://"}], [(LOC + [0, "url"], "url_host")], id="url-no-host"),
    pytest.param([{"url": "https://user:pw@a.example/h"}], [(LOC + [0, "url"], "url_userinfo")], id="url-userinfo"),
    pytest.param([{"url": "https://user@a.example/h"}], [(LOC + [0, "url"], "url_userinfo")], id="url-user-only"),
    pytest.param([{"url": "https://a.example/" + "a" * 2031}], [(LOC + [0, "url"], "url_too_long")], id="url-2049"),
    pytest.param([{"url": "https://a.example/a b"}], [(LOC + [0, "url"], "url_invalid")], id="url-space"),
    pytest.param([{"url": "https://a.example/\r\nX: y"}], [(LOC + [0, "url"], "url_invalid")], id="url-crlf"),
    pytest.param([{"url": "https://a.example:99999/"}], [(LOC + [0, "url"], "url_invalid")], id="url-bad-port"),
    pytest.param([{"url": "https://a.example/h", "auth_header": 5}], [(LOC + [0, "auth_header"], "string_type")],
                 id="auth-not-a-string"),
    pytest.param([{"url": "https://a.example/h", "auth_header": ""}], [(LOC + [0, "auth_header"], "auth_header_empty")],
                 id="auth-empty"),
    pytest.param([{"url": "https://a.example/h", "auth_header": "a" * 1025}],
                 [(LOC + [0, "auth_header"], "auth_header_too_long")], id="auth-1025"),
    pytest.param([{"url": "https://a.example/h", "auth_header": "tok\r\nX-Evil: 1"}],
                 [(LOC + [0, "auth_header"], "auth_header_characters")], id="auth-crlf"),
    pytest.param([{"url": "https://a.example/h", "auth_header": "tok en"}],
                 [(LOC + [0, "auth_header"], "auth_header_characters")], id="auth-space"),
    pytest.param([{"url": "https://a.example/h", "auth_header": "t\u00f6k"}],
                 [(LOC + [0, "auth_header"], "auth_header_characters")], id="auth-non-ascii"),
    pytest.param([{"url": "https://a.example/h", "secret": "x"}], [(LOC + [0, "secret"], "extra_forbidden")],
                 id="unknown-key"),
    pytest.param(
        [{"url": "https://a.example/h"}, {"url": "ftp://b"}, {"auth_header": "x", "extra": 1}],
        [(LOC + [1, "url"], "url_scheme"), (LOC + [2, "extra"], "extra_forbidden"), (LOC + [2, "url"], "missing")],
        id="every-problem-listed",
    ),
    pytest.param(
        [{"url": "ftp://b"}] * 5,
        [(LOC, "too_many")] + [(LOC + [n, "url"], "url_scheme") for n in range(3)],
        id="too-many-and-invalid-items",
    ),
]


@pytest.mark.parametrize(("webhooks", "expected"), REJECTED)
def test_invalid_webhooks_get_422_naming_each_problem_and_the_app_is_not_called(
    webhooks: Any, expected: list[tuple[list[Any], str]]
) -> None:
    app, seen = make_app()
    answer = call(app, body=report(webhooks))
    assert problems(answer) == expected
    assert all(problem["msg"] for problem in answer.json()["detail"])
    assert seen == []


def test_a_url_judged_before_is_judged_the_same_again_and_by_each_middleware_under_its_own_settings() -> None:
    # Each middleware remembers its URL verdicts: a refusal must be raised every time, and a
    # middleware with other settings must not inherit another's verdict.
    settings.configure()  # Private addresses refused, as by default.
    plain_app, _ = make_app()
    call(plain_app, method="GET", path="/other")  # Starlette builds the middleware, with the settings now.
    settings.configure(HTTPS_ONLY=True)
    https_app, _ = make_app()
    urls = {"http://a.example/h": (None, "url_https_required"), "ftp://a.example/h": ("url_scheme", "url_scheme"),
            "https://10.0.0.1/h": ("url_forbidden_address", "url_forbidden_address"),
            "https://a.example/h": (None, None)}
    for _ in range(2):
        for url, verdicts in urls.items():
            for app, expected in zip((plain_app, https_app), verdicts):
                answer = call(app, body=report([{"url": url}]))
                assert (problems(answer) if expected else answer.status) == (
                    [(LOC + [0, "url"], expected)] if expected else 200), (url, expected)


def test_422_messages_are_readable_and_do_not_echo_values() -> None:
    app, _ = make_app()
    answer = call(app, body=report([{"url": "https://a.example/h", "auth_header": SECRET + " x"}]))
    assert answer.json() == {"detail": [{
        "loc": ["body", "config", "webhooks", 0, "auth_header"],
        "msg": "Must contain only visible ASCII characters (no spaces, CR or LF).",
        "type": "auth_header_characters",
    }]}
    assert SECRET.encode() not in answer.body


def test_too_many_names_the_limit() -> None:
    app, _ = make_app(max_webhooks=2)
    answer = call(app, body=report([{"url": "https://a.example/%d" % n} for n in range(3)]))
    message = "At most 2 webhooks are allowed, got 3."
    assert answer.json()["detail"] == [{"loc": LOC, "msg": message, "type": "too_many"}]


@pytest.mark.parametrize("webhooks", [
    [{"url": "https://a.example/h"}],
    [{"url": "http://a.example:8080/h?x=1", "auth_header": None}],
    [{"url": "HTTPS://A.example/h", "auth_header": SECRET}],
    [{"url": "https://a.example/%d" % n, "auth_header": "x" * 1024} for n in range(3)],
    [{"url": "https://[2001:db8::1]:8443/h"}],
    [{"url": "https://a.example/" + "a" * 2030}],  # exactly 2048
])
def test_valid_webhooks_reach_the_app_byte_for_byte_with_state(webhooks: list[dict[str, Any]]) -> None:
    app, seen = make_app()
    body = report(webhooks).replace(b'"type"', b'\n  "type"')  # Odd spacing must survive too.
    answer = call(app, body=body)
    assert answer.status == 200
    assert seen == [{"body": body, "webhooks": tuple(
        Webhook(url=hook["url"], auth_header=hook.get("auth_header")) for hook in webhooks
    )}]


@pytest.mark.parametrize("body", [
    report(), report([]), b'{"config": {"webhooks": null}}', b'{"config": "not an object"}', b'{"config": null}', b"{}",
])
def test_no_webhooks_means_an_empty_tuple(body: bytes) -> None:
    app, seen = make_app()
    assert call(app, body=body).status == 200
    assert seen == [{"body": body, "webhooks": ()}]


@pytest.mark.parametrize("body", [
    b"not json", b"", b"[1, 2]", b'"a string"', b"\xff\xfe\x00", b"[" * 100_000, b'{"config": {"webhooks": [}',
])
def test_a_body_that_is_not_a_json_object_reaches_the_app_unchanged(body: bytes) -> None:
    app, seen = make_app()
    assert call(app, body=body).status == 200
    assert seen == [{"body": body, "webhooks": ()}]


def test_the_preview_path_is_validated_too() -> None:
    app, seen = make_app()
    assert call(app, path="/api/v1/preview-report", body=report({"x": 1})).status == 422
    assert seen == []


@pytest.mark.parametrize(("method", "path"), [("GET", "/api/v1/build-report"), ("POST", "/other"), ("GET", "/other")])
def test_other_requests_pass_with_their_body_unread(method: str, path: str) -> None:
    app, seen = make_app()
    answer = call(app, method, path, body=report({"not": "validated"}))
    assert answer.status == 200
    assert answer.receive_calls == 0  # Neither the middleware nor these routes read it.
    assert len(seen) == 1


def test_non_http_scopes_pass_through() -> None:
    calls = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["type"])

    middleware = WebhooksMiddleware(inner)
    call(middleware, scope_type="websocket")
    assert calls == ["websocket"]


def test_paths_can_be_overridden() -> None:
    app, seen = make_app(paths=["/other"])
    assert call(app, path="/other", body=report({"x": 1})).status == 422
    assert call(app, body=report({"x": 1})).status == 200
    assert len(seen) == 1


def test_settings_apply_when_no_argument_is_given() -> None:
    settings.configure(SUBMISSION_PATHS=["/other"], MAX_WEBHOOKS=1)
    app, _ = make_app()
    answer = call(app, path="/other", body=report([{"url": "https://a.example/1"}, {"url": "https://a.example/2"}]))
    assert answer.json()["detail"][0]["type"] == "too_many"


def test_413_from_content_length_without_reading_the_body() -> None:
    app, seen = make_app(max_body_bytes=100)
    answer = call(app, body=report([{"url": "https://a.example/h"}]) + b" " * 100)
    assert answer.status == 413
    assert answer.json() == {"detail": "Request body is larger than 100 bytes."}
    assert answer.receive_calls == 0
    assert seen == []


def test_413_when_a_streamed_body_grows_past_the_cap() -> None:
    app, seen = make_app(max_body_bytes=100)
    answer = call(app, chunks=[b"{" + b" " * 60, b" " * 60, b"}"], content_length=False)
    assert answer.status == 413
    assert answer.receive_calls == 2  # Stopped at the chunk that crossed the cap.
    assert seen == []


def test_a_body_at_the_cap_is_accepted() -> None:
    body = report([{"url": "https://a.example/h"}])
    app, seen = make_app(max_body_bytes=len(body))
    assert call(app, chunks=[body[:10], body[10:]], content_length=False).status == 200
    assert seen[0]["body"] == body


def test_a_client_that_disconnects_mid_body_reaches_nothing() -> None:
    app, seen = make_app()

    messages = iter([{"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"}])
    sent: list[Any] = []

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/v1/build-report", "headers": [], "query_string": b""}
    asyncio.run(WebhooksMiddleware(app)(scope, receive, send))
    assert sent == [] and seen == []


def test_the_app_gets_later_messages_after_the_replayed_body() -> None:
    received: list[Any] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        received.append(await receive())
        received.append(await receive())
        await Response("ok")(scope, receive, send)

    body = report([{"url": "https://a.example/h"}])
    call(WebhooksMiddleware(inner), body=body)
    assert received == [{"type": "http.request", "body": body, "more_body": False}, {"type": "http.disconnect"}]


def test_the_middleware_does_not_change_the_callers_scope_state() -> None:
    shared_state: dict[str, Any] = {"lifespan_thing": 1}
    states: list[Any] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        states.append(scope["state"])
        await Response("ok")(scope, receive, send)

    body = report([{"url": "https://a.example/h"}])
    scope = {"type": "http", "method": "POST", "path": "/api/v1/build-report", "headers": [], "state": shared_state}
    messages = iter([{"type": "http.request", "body": body, "more_body": False}])

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        pass

    asyncio.run(WebhooksMiddleware(inner)(scope, receive, send))
    assert shared_state == {"lifespan_thing": 1}
    assert states == [{"lifespan_thing": 1, "webhooks": (Webhook("https://a.example/h"),), "report": json.loads(body)}]


class TestPaidPlan:
    def test_402_when_the_plan_check_says_no(self) -> None:
        scopes: list[Any] = []
        app, seen = make_app(plan_check=lambda scope: scopes.append(scope) or False)
        answer = call(app, body=report([{"url": "https://a.example/h"}]))
        assert answer.status == 402
        assert "paid-plan" in answer.json()["detail"]
        assert seen == [] and scopes[0]["path"] == "/api/v1/build-report"

    def test_an_async_plan_check(self) -> None:
        async def allowed(scope: Any) -> bool:
            return scope["headers"] == [(b"x-plan", b"pro")] or any(name == b"x-plan" for name, _ in scope["headers"])

        app, seen = make_app(plan_check=allowed)
        assert call(app, body=report([{"url": "https://a.example/h"}])).status == 402
        assert call(app, body=report([{"url": "https://a.example/h"}]), headers=[(b"x-plan", b"pro")]).status == 200
        assert len(seen) == 1

    def test_not_asked_when_there_are_no_webhooks(self) -> None:
        def never(scope: Any) -> bool:
            raise AssertionError("asked")

        app, _seen = make_app(plan_check=never)
        assert call(app, body=report([])).status == 200

    def test_invalid_webhooks_are_422_before_the_plan(self) -> None:
        app, _ = make_app(plan_check=lambda scope: False)
        assert call(app, body=report([{"url": "ftp://x"}])).status == 422

    def test_from_an_import_path_setting(self) -> None:
        settings.configure(PLAN_CHECK="tests.test_middleware.free_plan")
        app, _seen = make_app()
        assert call(app, body=report([{"url": "https://a.example/h"}])).status == 402


def free_plan(scope: Any) -> bool:
    return False


@pytest.mark.parametrize(("options", "named"), [
    ({"max_body_bytes": 0}, "max_body_bytes"),
    ({"max_body_bytes": "10"}, "max_body_bytes"),
    ({"max_webhooks": -1}, "max_webhooks"),
    ({"paths": "/api/v1/build-report"}, "paths"),
    ({"paths": ["api/v1/build-report"]}, "paths"),
    ({"plan_check": "no_such_module_xyz.check"}, "plan_check"),
    ({"plan_check": 5}, "plan_check"),
])
def test_bad_arguments_are_errors_naming_the_argument(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=named):
        WebhooksMiddleware(lambda *args: None, **options)  # type: ignore[arg-type, return-value]


def test_the_parsed_report_is_handed_on_so_the_app_need_not_parse_it_again() -> None:
    reports: list[Any] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reports.append(scope["state"]["report"])
        await Response("ok")(scope, receive, send)

    body = report([{"url": "https://a.example/h"}])
    call(WebhooksMiddleware(inner), body=body)
    call(WebhooksMiddleware(inner), body=b"[1, 2]")
    assert reports == [json.loads(body), None]
