"""The router in front of FastAPI: a matched prediction route goes down the hot-path chain,
everything else to the FastAPI app it wraps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from serving.asgi.call import CALL, Call, Route
from serving.asgi.traffic import (
    BodyLimit,
    Endpoint,
    ErrorRendering,
    KeyAuth,
    PostOnly,
    RequestMetrics,
)


def chain(state: Any) -> Any:
    """The pieces, outermost first (each one's concern: serving.asgi.traffic)."""
    inner = BodyLimit(Endpoint(), state)
    return RequestMetrics(ErrorRendering(PostOnly(KeyAuth(inner, state))), state.metrics)


class PredictionRoutes:
    """ASGI layer answering the routes `match` knows itself (no Request/Response objects,
    dependency solving or exception middleware per call: measured, about half of a one-row
    request's time went there) and passing everything else to `app`."""

    def __init__(self, app: Any, state: Any, match: Callable[[str], Route | None]) -> None:
        self.app = app
        self.state = state
        self.match = match
        self.chain = chain(state)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        route = self.match(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        scope[CALL] = Call(scope, receive, self.state, route)
        await self.chain(scope, receive, send)
