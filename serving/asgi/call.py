"""One matched request as the pieces and handlers see it, and the one way they answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NamedTuple

from serving.errors import ApiError

# The scope key under which the router leaves the request's `Call` for the pieces after it.
CALL = "lifecycle.call"
JSON_HEADER = (b"content-type", b"application/json")


class Route(NamedTuple):
    """A hot-path route: its metrics label, its handler and how its errors read.

    `style`: "ours" (`{"detail", "field"}`, 422 for bad records), "mlflow" (MLflow's scoring
    server format, 400) or "v2" (the Open Inference Protocol's `{"error"}`, 400).
    """

    template: str
    handler: Callable[[Call], Awaitable[tuple[bytes, str]]]
    style: str = "ours"


class Call:
    """One request: lower-case headers, app state, its route and the (limited) receive."""

    __slots__ = ("headers", "path", "receive", "route", "state")

    def __init__(self, scope: dict, receive: Any, state: Any, route: Route) -> None:
        self.headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.path: str = scope["path"]
        self.receive = receive
        self.state = state
        self.route = route

    @property
    def mlflow_format(self) -> bool:
        return self.route.style == "mlflow"

    async def body(self) -> bytes:
        """The raw body (`BodyLimit` has wrapped `receive` to refuse one over the limit)."""
        chunks = []
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ApiError(400, "body: client disconnected", "body", self.mlflow_format)
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def media_type(self) -> tuple[str, dict[str, str]]:
        raw = self.headers.get("content-type", "")
        parts = [p.strip() for p in raw.split(";")]
        params = {}
        for p in parts[1:]:
            key, _, value = p.partition("=")
            params[key.strip().lower()] = value.strip().strip('"')
        return parts[0].lower(), params


async def send_json(
    send: Any, status: int, body: bytes, extra: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Answer with a JSON body and its length: without a length uvicorn answers chunked, and a
    client cannot tell a whole body from a cut one (Starlette and `mlflow models serve` send it).
    """
    headers = [JSON_HEADER, *extra, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
