"""The hot path's pieces, one concern each (after BentoML's `server/http/traffic.py`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from lifecycle.core.errors import ModelNotReadyError
from serving.asgi.call import CALL, Call, send_json
from serving.deps import check_key
from serving.errors import ApiError, render_error


def _call_template(scope: dict) -> str:
    return scope[CALL].route.template


class RequestMetrics:
    """Counts every answer by route template and status, and times it. `endpoint` names the
    route from the scope: the fast path's own call by default; FastAPI's matched route for the
    rest of the app (serving.app)."""

    def __init__(
        self, app: Any, metrics: Any, endpoint: Callable[[dict], str] = _call_template
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.endpoint = endpoint

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # lifespan and websockets are not requests
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.observe_request(self.endpoint(scope), status, time.perf_counter() - start)


class ErrorRendering:
    """An `ApiError` or `ModelNotReadyError` becomes its JSON answer, in the route's style."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except ApiError as exc:
            await _send_error(send, scope[CALL], exc)
        except ModelNotReadyError as exc:
            call: Call = scope[CALL]
            error = ApiError(503, f"no model is being served: {exc}", None, call.mlflow_format)
            await _send_error(send, call, error)


async def _send_error(send: Any, call: Call, exc: ApiError) -> None:
    extra = [(k.encode(), v.encode()) for k, v in exc.headers.items()]
    await send_json(send, exc.status, render_error(exc, call.route.style), extra)


class PostOnly:
    """405 for any method but POST."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["method"] != "POST":
            call: Call = scope[CALL]
            message = f"method: {call.route.template} accepts POST only"
            raise ApiError(405, message, "method", call.mlflow_format)
        await self.app(scope, receive, send)


class KeyAuth:
    """401 unless the API key was presented, when MLOPS_PROTECT_PREDICT is on."""

    def __init__(self, app: Any, state: Any) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        settings = self.state.settings
        if settings.protect_predict:
            call: Call = scope[CALL]
            check_key(settings, call.headers, call.mlflow_format)
        await self.app(scope, receive, send)


class BodyLimit:
    """413 for a body over MLOPS_MAX_BODY_BYTES: by its Content-Length before anything is read,
    else as soon as the chunks read pass it. Lazy, so the handler's own checks (content type,
    model name) still come first."""

    def __init__(self, app: Any, state: Any) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        call: Call = scope[CALL]
        call.receive = _limited(call, receive, self.state.settings.max_body_bytes)
        await self.app(scope, receive, send)


def _limited(call: Call, receive: Any, limit: int) -> Any:
    size = -1  # -1: nothing read yet, so the Content-Length is checked first

    def too_big() -> ApiError:
        detail = f"body: request body is over the limit of {limit} bytes"
        return ApiError(413, detail, "body", call.mlflow_format)

    async def receive_limited() -> dict:
        nonlocal size
        if size < 0:
            length = call.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                raise too_big()
            size = 0
        message = await receive()
        size += len(message.get("body", b""))
        if size > limit:
            raise too_big()
        return message

    return receive_limited


class Endpoint:
    """The route's handler; its body answers 200 with the model version that made it."""

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        call: Call = scope[CALL]
        body, version = await call.route.handler(call)
        await send_json(send, 200, body, ((b"x-model-version", version.encode()),))
