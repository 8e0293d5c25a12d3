"""Prediction routes: our /predict, MLflow's /invocations and KServe v1's :predict.

These are the hot path, so they are served by `serving.asgi` (a plain ASGI chain in front of
FastAPI's router; `ROUTES` and `match` tell it which paths are its own). The body is parsed with
orjson, then validated and encoded in one pass by the model's `RecordValidator`: no pydantic
model per record and no pandas. /openapi.json still documents the routes with the real record
schema (`serving.schemas.openapi`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from lifecycle.core.errors import InputValidationError
from lifecycle.stores.journal import JournalEntry
from serving.asgi.call import Call, Route
from serving.asgi.parsing import dumps, parse_json, require_json
from serving.errors import ApiError
from serving.holder import LoadedModel
from serving.routes.mlflow_input import mlflow_records, parse_csv

# Above this many rows, prediction runs in a worker thread (XGBoost releases the GIL) so one big
# batch does not hold up the small requests behind it.
THREAD_ROWS = 256
KSERVE_PREFIX = "/v1/models/"
KSERVE_SUFFIX = ":predict"
KSERVE_ROUTE = "/v1/models/{name}:predict"


def invalid(exc: InputValidationError, call: Call) -> ApiError:
    """A record that does not fit the model: 422 on our routes, 400 for MLflow and v2 clients
    (as `mlflow models serve` and the Open Inference Protocol answer)."""
    call.state.metrics.count_unseen(error=exc)  # an unseen category is counted
    status = 422 if call.route.style == "ours" else 400
    return ApiError(status, str(exc), exc.field, call.mlflow_format)


async def predict_records(
    call: Call,
    records: list[Any],
    endpoint: str,
    raw: bytes | None = None,
    pinned: LoadedModel | None = None,
) -> tuple[LoadedModel, list[Any], Any, list[str], list[dict[str, Any]]]:
    """Validate → predict → count → log. Returns (model, labels, probabilities, ids, unseen).

    `raw`: the request body when it is exactly the records as JSON (a record or a list); the
    log keeps those bytes instead of the parsed records, which then die with the request.
    `pinned`: the version the client addressed (v2); it answers, with no canary or shadow.
    """
    t0 = time.perf_counter()
    state = call.state
    model = pinned or state.holder.require()
    shadow = None
    challenger = getattr(state, "challenger", None)  # serving.shadow: shadow and canary
    if challenger is not None and pinned is None:
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
        raise invalid(exc, call) from None
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
    body = await call.body()
    want_proba = False
    if kind == "text/csv":
        model = call.state.holder.require()
        records = parse_csv(body, model)
    else:
        payload = parse_json(body, mlflow_format=True)
        model = call.state.holder.require()
        records, options = mlflow_records(payload, model)
        want_proba = bool(options.get("probabilities"))
    model, labels, proba, *_ = await predict_records(call, records, "/invocations")
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


ROUTES = {
    "/predict": Route("/predict", predict),
    "/invocations": Route("/invocations", invocations, "mlflow"),
}
KSERVE = Route(KSERVE_ROUTE, kserve_predict)


def match(path: str) -> Route | None:
    """The hot-path route of `path`, or None (FastAPI's router answers it)."""
    route = ROUTES.get(path)
    if route is None and path.startswith(KSERVE_PREFIX) and path.endswith(KSERVE_SUFFIX):
        return KSERVE
    return route
