"""Prediction routes: our /predict, MLflow's /invocations and KServe v1's :predict.

These are the hot path, so they are served by `PredictionRoutes`, a plain ASGI layer in front
of FastAPI's router: no Request/Response objects, dependency solving or exception middleware per
call (measured: about half of a one-row request's time went there). The body is parsed with
orjson, then validated and encoded in one pass by the model's `RecordValidator`: no pydantic
model per record and no pandas. /openapi.json still documents the three routes with the real
record schema (`serving.schemas.openapi`).
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
import uuid
from typing import Any

import orjson

from lifecycle.core.errors import InputValidationError, ModelNotReadyError
from lifecycle.stores.journal import JournalEntry
from serving.deps import check_key
from serving.errors import ApiError, from_validation, render
from serving.holder import LoadedModel

MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
# Above this many rows, prediction runs in a worker thread (XGBoost releases the GIL) so one big
# batch does not hold up the small requests behind it.
THREAD_ROWS = 256
KSERVE_PREFIX = "/v1/models/"
KSERVE_SUFFIX = ":predict"
KSERVE_ROUTE = "/v1/models/{name}:predict"
_JSON_HEADERS = [(b"content-type", b"application/json")]


class Call:
    """One request as the handlers see it: lower-case headers, app state, the body."""

    __slots__ = ("headers", "path", "receive", "state")

    def __init__(self, scope: dict, receive: Any, state: Any) -> None:
        self.headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.path: str = scope["path"]
        self.receive = receive
        self.state = state

    async def body(self, mlflow_format: bool = False) -> bytes:
        """The raw body, refusing more than MLOPS_MAX_BODY_BYTES before reading it all."""
        limit = self.state.settings.max_body_bytes
        too_big = ApiError(
            413, f"body: request body is over the limit of {limit} bytes", "body", mlflow_format
        )
        length = self.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise too_big
        chunks, size = [], 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ApiError(400, "body: client disconnected", "body", mlflow_format)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_big
            chunks.append(chunk)
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


class PredictionRoutes:
    """ASGI layer answering POST /predict, /invocations and /v1/models/{name}:predict itself and
    passing everything else to the FastAPI app it wraps."""

    def __init__(self, app: Any, state: Any) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        route = _route(scope) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        call = Call(scope, receive, self.state)
        mlflow_format = route == "/invocations"
        headers = _JSON_HEADERS
        try:
            if scope["method"] != "POST":
                raise ApiError(405, f"method: {route} accepts POST only", "method", mlflow_format)
            settings = self.state.settings
            if settings.protect_predict:
                check_key(settings, call.headers, mlflow_format)
            if route == "/predict":
                status, body, version = 200, *await predict(call)
            elif mlflow_format:
                status, body, version = 200, *await invocations(call)
            else:
                status, body, version = 200, *await kserve_predict(call)
            headers = [*_JSON_HEADERS, (b"x-model-version", version.encode())]
        except ApiError as exc:
            status, body = exc.status, _render_bytes(exc)
            headers = [*_JSON_HEADERS, *((k.encode(), v.encode()) for k, v in exc.headers.items())]
        except ModelNotReadyError as exc:
            error = ApiError(503, f"no model is being served: {exc}", None, mlflow_format)
            status, body = 503, _render_bytes(error)
        # A length, as Starlette's responses and `mlflow models serve` send: without it uvicorn
        # answers chunked, and a client cannot tell a whole body from a cut one.
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self.state.metrics.observe_request(route, status, time.perf_counter() - start)


def _route(scope: dict) -> str | None:
    path = scope["path"]
    if path == "/predict" or path == "/invocations":
        return path
    if path.startswith(KSERVE_PREFIX) and path.endswith(KSERVE_SUFFIX):
        return KSERVE_ROUTE
    return None


def _render_bytes(exc: ApiError) -> bytes:
    return bytes(render(exc).body)


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


async def predict_records(
    call: Call,
    records: list[Any],
    endpoint: str,
    mlflow_format: bool = False,
    raw: bytes | None = None,
) -> tuple[LoadedModel, list[Any], Any, list[str], list[dict[str, Any]]]:
    """Validate → predict → count → log. Returns (model, labels, probabilities, ids, unseen).

    `raw`: the request body when it is exactly the records as JSON (a record or a list); the
    log keeps those bytes instead of the parsed records, which then die with the request.
    """
    t0 = time.perf_counter()
    state = call.state
    model = state.holder.require()
    shadow = None
    challenger = getattr(state, "challenger", None)  # serving.shadow: shadow and canary
    if challenger is not None:
        model, shadow = challenger.route(model, call.headers)
    unseen: list[Any] | None = [] if state.settings.unseen_category == "missing" else None
    try:
        if len(records) > THREAD_ROWS:
            matrix = await asyncio.to_thread(
                model.validator.encode, records, state.settings.max_batch, unseen
            )
            labels, proba = await asyncio.to_thread(model.predict, matrix)
        else:
            matrix = model.validator.encode(records, state.settings.max_batch, unseen)
            labels, proba = model.predict(matrix)
    except InputValidationError as exc:
        raise from_validation(exc, mlflow_format, state.metrics) from None
    n = len(labels)
    ids = [str(uuid.uuid4()) for _ in range(n)]
    labelled = labels if model.is_classifier else None
    state.metrics.count_predictions(model.version, labelled, n, unseen)
    if state.logger is not None:
        # One entry; the logger's writer encodes it (`journal.encode_entry`) off the request.
        entry = JournalEntry(
            ids=ids,
            ts=time.time(),
            model_name=model.name,
            model_version=model.version,
            records=records if raw is None else raw,
            predictions=labels,
            class_keys=model.class_keys,
            probabilities=proba,
            latency_ms=(time.perf_counter() - t0) * 1000.0,
            request_id=call.headers.get("x-request-id") or ids[0],
            endpoint=endpoint,
            unseen=unseen or None,
        )
        if shadow is None:
            state.logger.log(entry)
        else:  # scored by the shadow off the request path, then logged
            challenger.log(state.logger, entry, shadow, model, records, matrix)
    return model, labels, proba, ids, unseen or []


async def predict(call: Call) -> tuple[bytes, str]:
    """POST /predict: predictions, class probabilities and one prediction id per row."""
    require_json(call)
    raw = await call.body()
    payload = parse_json(raw)
    if isinstance(payload, dict):
        records = [payload]
    elif isinstance(payload, list):
        records = payload
    else:
        raise ApiError(422, "body: expected a record (object) or a list of records", "body")
    model, labels, proba, ids, unseen = await predict_records(call, records, "/predict", raw=raw)
    body: dict[str, Any] = {
        "model_name": model.name,
        "model_version": model.version,
        "predictions": labels,
        "prediction_ids": ids,
        **({"unseen": unseen} if unseen else {}),  # MLOPS_UNSEEN_CATEGORY=missing only
    }
    if proba is not None:
        keys = model.class_keys
        body["probabilities"] = [dict(zip(keys, row, strict=True)) for row in proba.tolist()]
    return dumps(body), model.version


async def invocations(call: Call) -> tuple[bytes, str]:
    """POST /invocations, as `mlflow models serve`: four JSON formats or CSV in,
    `{"predictions": [...]}` out."""
    kind, params = call.media_type()
    if params.get("charset", "utf-8").lower() != "utf-8":
        raise ApiError(415, "content-type: the scoring server only supports UTF-8", "charset", True)
    if kind not in ("text/csv", "application/json"):
        raise ApiError(
            415,
            "content-type: this predictor only supports application/json and text/csv;"
            f" got {kind or 'nothing'!r}",
            "content-type",
            True,
        )
    body = await call.body(mlflow_format=True)
    want_proba = False
    if kind == "text/csv":
        model = call.state.holder.require()
        records = parse_csv(body, model)
    else:
        payload = parse_json(body, mlflow_format=True)
        model = call.state.holder.require()
        records, options = mlflow_records(payload, model)
        want_proba = bool(options.get("probabilities"))
    model, labels, proba, *_ = await predict_records(call, records, "/invocations", True)
    if want_proba and proba is not None:
        keys = model.class_keys
        predictions: Any = [dict(zip(keys, row, strict=True)) for row in proba.tolist()]
    else:
        predictions = labels
    return dumps({"predictions": predictions}), model.version


async def kserve_predict(call: Call) -> tuple[bytes, str]:
    """POST /v1/models/{name}:predict, KServe v1: `{"instances": [...]}` → `{"predictions"}`."""
    name = call.path[len(KSERVE_PREFIX) : -len(KSERVE_SUFFIX)]
    model = call.state.holder.require()
    if name != model.name:
        raise ApiError(
            404, f"name: no model named {name!r}; this server has {model.name!r}", "name"
        )
    require_json(call)
    payload = parse_json(await call.body())
    if not isinstance(payload, dict) or "instances" not in payload:
        raise ApiError(422, 'instances: expected {"instances": [records]}', "instances")
    instances = payload["instances"]
    if not isinstance(instances, list):
        raise ApiError(422, "instances: expected a list of records", "instances")
    model, labels, *_ = await predict_records(call, instances, KSERVE_ROUTE)
    return dumps({"predictions": labels}), model.version


# -- MLflow input formats -------------------------------------------------------------------------
def mlflow_records(payload: Any, model: LoadedModel) -> tuple[list[Any], dict[str, Any]]:
    """One of MLflow's four JSON input formats → records, plus the optional `params`."""
    if not isinstance(payload, dict):
        raise ApiError(
            400,
            f"body: the input must be a JSON object with exactly one of {list(MLFLOW_FORMATS)}",
            "body",
            True,
        )
    present = [k for k in MLFLOW_FORMATS if k in payload]
    if len(present) != 1:
        raise ApiError(
            400,
            f"body: the input must have exactly one of the fields {list(MLFLOW_FORMATS)};"
            f" got {sorted(map(str, payload))[:10]}",
            "body",
            True,
        )
    fmt = present[0]
    params = payload.get("params") or {}
    if not isinstance(params, dict):
        raise ApiError(400, "params: expected an object", "params", True)
    data = payload[fmt]
    validator = model.validator
    try:
        if fmt == "dataframe_split":
            records = validator.split_to_records(data, fmt)
        elif fmt == "dataframe_records":
            if not isinstance(data, list):
                raise InputValidationError(fmt, "expected a list of records")
            records = data
        elif isinstance(data, dict):  # instances / inputs, column-oriented
            records = validator.columns_to_records(data, fmt)
        elif isinstance(data, list):
            records = data
        else:
            raise InputValidationError(fmt, "expected a list of records or an object of columns")
    except InputValidationError as exc:
        raise from_validation(exc, mlflow_format=True) from None
    return records, params


def parse_csv(body: bytes, model: LoadedModel) -> list[dict[str, Any]]:
    """CSV with a header row → records typed by the model's features (no pandas)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "body: CSV must be UTF-8 text", "body", True) from None
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise ApiError(400, f"body: not valid CSV ({exc})", "body", True) from None
    if not rows or not rows[0]:
        raise ApiError(400, "body: empty CSV; expected a header row and data rows", "body", True)
    header = rows[0]
    # `DataFrame.to_csv()` with its index writes an unnamed first column: skip it, as the model
    # never sees it through `mlflow models serve` either.
    skip_first = header[0] == ""
    names = header[1:] if skip_first else header
    kinds = {c.name: c.kind for c in model.validator.columns}
    records = []
    for i, row in enumerate(rows[1:], start=1):
        if not row:
            continue
        values = row[1:] if skip_first else row
        if len(values) != len(names):
            raise ApiError(
                400,
                f"body: CSV line {i + 1} has {len(values)} values for {len(names)} columns",
                "body",
                True,
            )
        records.append(
            {
                name: _csv_value(name, kinds.get(name), v)
                for name, v in zip(names, values, strict=True)
            }
        )
    return records


def _csv_value(name: str, kind: str | None, text: str) -> Any:
    if text == "":
        return None
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                raise ApiError(
                    400, f"{name}: expected an integer; got {text[:40]!r}", name, True
                ) from None
    if kind == "numeric":
        try:
            return float(text)
        except ValueError:
            raise ApiError(
                400, f"{name}: expected a number; got {text[:40]!r}", name, True
            ) from None
    return text
