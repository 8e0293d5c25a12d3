"""Body parsing for the hot path: content type, JSON in (orjson), JSON out."""

from __future__ import annotations

from typing import Any

import orjson

from serving.asgi.call import Call
from serving.errors import ApiError


def dumps(content: Any) -> bytes:
    return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def parse_json(body: bytes, mlflow_format: bool = False) -> Any:
    if not body:
        raise ApiError(400, "body: empty request body; expected JSON", "body", mlflow_format)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"body: not valid JSON ({exc})", "body", mlflow_format) from None


def require_json(call: Call, mlflow_format: bool = False) -> None:
    kind, _ = call.media_type()
    if kind != "application/json" and not kind.endswith("+json"):
        raise ApiError(
            415,
            f"content-type: expected application/json, got {kind or 'nothing'!r}",
            "content-type",
            mlflow_format,
        )
