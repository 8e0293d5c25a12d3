"""HTTP errors of the API and their JSON bodies.

Our routes answer `{"detail": message, "field": name}`; `/invocations` answers in MLflow's
scoring-server format (`{"error_code": ..., "message": ...}`) so MLflow clients read our errors
as they read `mlflow models serve`'s.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response

from lifecycle.core.errors import InputValidationError, ModelNotReadyError

JSON = "application/json"

_MLFLOW_CODES = {
    400: "BAD_REQUEST",
    404: "RESOURCE_DOES_NOT_EXIST",
    413: "BAD_REQUEST",
    415: "BAD_REQUEST",
    422: "BAD_REQUEST",
    503: "TEMPORARILY_UNAVAILABLE",
}


class ApiError(Exception):
    """An answer other than 2xx, raised from a route and rendered by `install_handlers`."""

    def __init__(
        self, status: int, detail: str, field: str | None = None, mlflow_format: bool = False
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        self.mlflow_format = mlflow_format
        self.headers: dict[str, str] = {}


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """orjson-encoded JSON (numpy arrays and datetimes included)."""
    return Response(encode_json(content), status_code=status, media_type=JSON, headers=headers)


def encode_json(content: Any) -> bytes:
    try:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    except orjson.JSONEncodeError:
        # Error bodies may echo client text that orjson refuses (lone surrogates, huge ints);
        # the standard library escapes those.
        return json.dumps(content, default=str).encode()


def render(exc: ApiError) -> Response:
    if exc.mlflow_format:
        body: dict[str, Any] = {
            "error_code": _MLFLOW_CODES.get(exc.status, "BAD_REQUEST"),
            "message": exc.detail,
        }
    else:
        body = {"detail": exc.detail}
        if exc.field is not None:
            body["field"] = exc.field
    return json_response(body, exc.status, exc.headers or None)


def render_error(exc: ApiError, style: str = "ours") -> bytes:
    """The error's body in a route's style: ours or MLflow's (`render`), or the Open Inference
    Protocol's `{"error": message}` ("v2")."""
    if style == "v2":
        return encode_json({"error": exc.detail})
    return bytes(render(exc).body)


def from_validation(
    exc: InputValidationError, mlflow_format: bool = False, metrics: Any | None = None
) -> ApiError:
    """The answer to a validation error; `metrics` (ServingMetrics) counts an unseen category."""
    if metrics is not None:
        metrics.count_unseen(error=exc)
    # 400 for MLflow clients (as `mlflow models serve`), 422 for our own routes
    return ApiError(400 if mlflow_format else 422, str(exc), exc.field, mlflow_format)


def install_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return render(exc)

    async def not_ready(request: Request, exc: Exception) -> Response:
        mlflow_format = request.url.path == "/invocations"
        return render(ApiError(503, f"no model is being served: {exc}", None, mlflow_format))

    async def request_validation(request: Request, exc: Exception) -> Response:
        # FastAPI's own body/parameter validation (pydantic routes): name the field first.
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        fields = [_field(e.get("loc", ()), exc.body, e.get("type")) for e in errors]
        # A union body (one item or a list) fails once per member: the error that follows the
        # input deepest is about the member the client meant.
        field = max(fields, key=len, default="body")
        messages = list(
            dict.fromkeys(
                e.get("msg", "invalid") for e, f in zip(errors, fields, strict=True) if f == field
            )
        )
        message = f"{field}: {'; or '.join(messages[:4]) or 'invalid'}"
        # Only where and what: the offending input itself may not be encodable.
        summary = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg"), "type": e.get("type")}
            for e in errors[:20]
        ]
        return json_response({"detail": message, "field": field, "errors": summary}, 422)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(ModelNotReadyError, not_ready)
    app.add_exception_handler(RequestValidationError, request_validation)


def _field(loc: Sequence[Any], body: Any, error_type: str | None) -> str:
    """The client's name for where a pydantic error is: `actual`, `body[2].prediction_id`.

    pydantic's locations also hold the tags of union members (`Feedback`, `list[Feedback]`,
    `str`), which are no part of the input: only keys and indexes that exist in the body are
    kept, and the last name of a `missing` error (the field that is not there).
    """
    where, *rest = loc or ("body",)
    if where != "body":  # query or path parameters: their names
        return ".".join(str(p) for p in rest) or str(where)
    path, value = "", body
    for i, part in enumerate(rest):
        if isinstance(value, dict) and part in value:
            path, value = f"{path}.{part}" if path else str(part), value[part]
        elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
            path, value = f"{path or 'body'}[{part}]", value[part]
        elif error_type == "missing" and i == len(rest) - 1 and isinstance(value, dict):
            path = f"{path}.{part}" if path else str(part)
    return path or "body"
