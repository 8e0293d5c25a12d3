"""The hot path's ASGI pieces (serving.asgi), each alone: in process, no servers."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from lifecycle.core.errors import ModelNotReadyError
from serving.asgi.call import CALL, Call, Route
from serving.asgi.router import PredictionRoutes
from serving.asgi.traffic import (
    BodyLimit,
    Endpoint,
    ErrorRendering,
    KeyAuth,
    PostOnly,
    RequestMetrics,
)
from serving.errors import ApiError


async def _echo(call: Call) -> tuple[bytes, str]:
    return await call.body(), "7"


def _state(**settings: Any) -> SimpleNamespace:
    values = {"max_body_bytes": 10, "protect_predict": False, "api_key": None, **settings}
    return SimpleNamespace(settings=SimpleNamespace(**values), metrics=None)


def _scope(method: str = "POST", headers: dict[str, str] | None = None, path: str = "/p") -> dict:
    raw = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    return {"type": "http", "method": method, "path": path, "headers": raw}


def _run(app: Any, scope: dict, chunks: list[bytes], style: str = "ours") -> list[dict]:
    """Run one request through `app`; the messages it sent."""
    if CALL not in scope and scope["type"] == "http":
        scope[CALL] = Call(scope, None, _state(), Route("/p", _echo, style))
    pending = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        return pending.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    scope[CALL].receive = receive
    asyncio.run(app(scope, receive, send))
    return sent


def _answer(sent: list[dict]) -> tuple[int, dict[bytes, bytes], Any]:
    start, body = sent
    return start["status"], dict(start["headers"]), orjson.loads(body["body"])


def test_endpoint_answers_the_handlers_body_with_its_model_version() -> None:
    status, headers, body = _answer(_run(Endpoint(), _scope(), [b'{"a":', b"1}"]))
    assert (status, body) == (200, {"a": 1})
    assert headers[b"x-model-version"] == b"7"
    assert headers[b"content-length"] == b"7"


def test_body_limit_refuses_by_content_length_before_reading() -> None:
    scope = _scope(headers={"content-length": "11"})
    with pytest.raises(ApiError) as err:
        _run(BodyLimit(Endpoint(), _state()), scope, [])  # nothing to read: not read
    assert (err.value.status, err.value.field) == (413, "body")


def test_body_limit_refuses_chunks_that_pass_the_limit() -> None:
    with pytest.raises(ApiError) as err:
        _run(BodyLimit(Endpoint(), _state()), _scope(), [b"123456", b"78901"])
    assert err.value.status == 413 and "limit of 10 bytes" in err.value.detail


def test_body_limit_lets_a_body_at_the_limit_through() -> None:
    sent = _run(BodyLimit(Endpoint(), _state()), _scope(), [b"[1,2,", b"3,4]"])
    assert _answer(sent)[2] == [1, 2, 3, 4]


def test_body_limit_leaves_the_handlers_checks_first() -> None:
    async def refuses(call: Call) -> tuple[bytes, str]:
        raise ApiError(415, "content-type: no", "content-type")

    scope = _scope(headers={"content-length": "999"})
    scope[CALL] = Call(scope, None, _state(), Route("/p", refuses))
    with pytest.raises(ApiError) as err:
        _run(BodyLimit(Endpoint(), _state()), scope, [])
    assert err.value.status == 415


def test_key_auth_passes_when_protection_is_off() -> None:
    assert _answer(_run(KeyAuth(Endpoint(), _state()), _scope(), [b"1"]))[0] == 200


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({}, False),
        ({"x-api-key": "wrong"}, False),
        ({"x-api-key": "s3"}, True),
        ({"authorization": "Bearer s3"}, True),
    ],
)
def test_key_auth_needs_the_key_when_protected(headers: dict[str, str], allowed: bool) -> None:
    app = KeyAuth(Endpoint(), _state(protect_predict=True, api_key="s3"))
    if allowed:
        assert _answer(_run(app, _scope(headers=headers), [b"1"]))[0] == 200
        return
    with pytest.raises(ApiError) as err:
        _run(app, _scope(headers=headers), [b"1"])
    assert err.value.status == 401 and err.value.headers == {"WWW-Authenticate": "Bearer"}


def test_post_only_refuses_other_methods_naming_the_route() -> None:
    with pytest.raises(ApiError) as err:
        _run(PostOnly(Endpoint()), _scope("GET"), [b""])
    assert (err.value.status, err.value.detail) == (405, "method: /p accepts POST only")


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("ours", {"detail": "x: bad", "field": "x"}),
        ("mlflow", {"error_code": "BAD_REQUEST", "message": "x: bad"}),
        ("v2", {"error": "x: bad"}),
    ],
)
def test_error_rendering_answers_in_the_routes_style(style: str, expected: dict) -> None:
    async def fails(scope: dict, receive: Any, send: Any) -> None:
        raise ApiError(422, "x: bad", "x", style == "mlflow")

    status, headers, body = _answer(_run(ErrorRendering(fails), _scope(), [], style))
    assert (status, body) == (422, expected)
    assert headers[b"content-type"] == b"application/json"


def test_error_rendering_answers_503_when_no_model_is_loaded() -> None:
    async def not_ready(scope: dict, receive: Any, send: Any) -> None:
        raise ModelNotReadyError("registry down")

    status, _, body = _answer(_run(ErrorRendering(not_ready), _scope(), []))
    assert (status, body["detail"]) == (503, "no model is being served: registry down")


def test_error_rendering_lets_other_exceptions_through() -> None:
    async def broken(scope: dict, receive: Any, send: Any) -> None:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError):
        _run(ErrorRendering(broken), _scope(), [])


class _Metrics:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        assert seconds >= 0
        self.seen.append((endpoint, status))


def test_request_metrics_count_the_answer_by_route_template_and_status() -> None:
    metrics = _Metrics()
    _run(RequestMetrics(ErrorRendering(PostOnly(Endpoint())), metrics), _scope("PUT"), [])
    _run(RequestMetrics(Endpoint(), metrics), _scope(), [b"1"])
    assert metrics.seen == [("/p", 405), ("/p", 200)]


def test_request_metrics_count_an_unexpected_failure_as_500() -> None:
    async def broken(scope: dict, receive: Any, send: Any) -> None:
        raise RuntimeError("a bug")

    metrics = _Metrics()
    with pytest.raises(RuntimeError):
        _run(RequestMetrics(broken, metrics), _scope(), [])
    assert metrics.seen == [("/p", 500)]


def test_router_sends_unmatched_paths_and_other_scopes_to_the_app() -> None:
    seen: list[str] = []

    async def app(scope: dict, receive: Any, send: Any) -> None:
        seen.append(scope.get("path", scope["type"]))

    state = _state()
    state.metrics = _Metrics()
    router = PredictionRoutes(app, state, {"/p": Route("/p", _echo)}.get)
    asyncio.run(router({"type": "lifespan"}, None, None))
    asyncio.run(router(_scope(path="/other"), None, None))
    assert seen == ["lifespan", "/other"]


def test_router_answers_a_matched_path_through_the_chain() -> None:
    state = _state()
    state.metrics = _Metrics()
    router = PredictionRoutes(None, state, {"/p": Route("/p", _echo)}.get)
    sent: list[dict] = []
    chunks = [{"type": "http.request", "body": b"12345678901"}]

    async def receive() -> dict:
        return chunks.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(router(_scope(), receive, send))
    assert _answer(sent)[0] == 413 and state.metrics.seen == [("/p", 413)]
