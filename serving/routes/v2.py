"""The Open Inference Protocol (KServe v2 / Triton) over REST.

Health, server and model metadata and model readiness are FastAPI routes; inference
(`POST /v2/models/{name}[/versions/{version}]/infer`) is a hot-path route (`infer`, served by
`serving.asgi` like /predict) that turns the tensors into records (`serving.tensors`) and goes
through /predict's validation, prediction, metrics, prediction log, shadow and canary. Errors
answer the protocol's `{"error": message}`.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from lifecycle.core.errors import InputValidationError, ModelNotReadyError
from serving.asgi.call import Call, Route
from serving.asgi.parsing import dumps, parse_json
from serving.errors import ApiError, json_response
from serving.holder import LoadedModel
from serving.routes.predict import invalid, predict_records
from serving.tensors import datatype_of, decode_request, encode_outputs, label_datatype

PREFIX = "/v2/models/"
INFER_SUFFIX = "/infer"
INFER_ROUTE = "/v2/models/{name}/infer"
VERSIONED_INFER_ROUTE = "/v2/models/{name}/versions/{version}/infer"
BINARY_HEADER = "inference-header-content-length"  # Triton's binary tensor data extension

router = APIRouter(tags=["open inference protocol (v2)"])


def served_model(state: Any, name: str, version: str | None) -> LoadedModel:
    """The model a v2 path addresses: the served one, or a shadow/canary challenger addressed
    by its version. 404 naming what is served otherwise; 503 while nothing is loaded."""
    model: LoadedModel = state.holder.require()
    if name != model.name:
        raise ApiError(404, f"model {name!r} is not served here; this server has {model.name!r}")
    if version is None or version == model.version:
        return model
    challenger = getattr(state, "challenger", None)
    other = challenger.holder.current if challenger is not None else None
    if other is not None and other.version == version:
        return other
    raise ApiError(
        404,
        f"version {version!r} of model {name!r} is not served; the served version is"
        f" {model.version!r}",
    )


def _v2_error(exc: Exception) -> Response:
    if isinstance(exc, ModelNotReadyError):
        return json_response({"error": f"no model is being served: {exc}"}, 503)
    assert isinstance(exc, ApiError)
    return json_response({"error": exc.detail}, exc.status)


def metadata(model: LoadedModel) -> dict[str, Any]:
    """The model's v2 metadata: one input per feature, `predict` (and `predict_proba`)."""
    spec = model.predictor.spec
    labels = list(spec.classes) if spec.is_classifier else [0.0]
    outputs = [{"name": "predict", "datatype": label_datatype(labels), "shape": [-1, 1]}]
    if spec.is_classifier:
        classes = len(spec.classes)
        outputs.append({"name": "predict_proba", "datatype": "FP32", "shape": [-1, classes]})
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": "xgboost",
        "inputs": [
            {"name": c.name, "datatype": datatype_of(c), "shape": [-1, 1]}
            for c in model.validator.columns
        ],
        "outputs": outputs,
        "parameters": {"content_type": "pd", "task": spec.task, "classes": list(model.class_keys)},
    }


@router.get("/v2")
async def server_metadata(request: Request) -> Response:
    """Server metadata: name, version and protocol extensions."""
    version = request.app.version
    return json_response(
        {"name": "lifecycle", "version": version, "extensions": ["binary_tensor_data"]}
    )


@router.get("/v2/health/live")
async def live() -> Response:
    """Liveness: 200 while the process answers."""
    return json_response({"live": True})


@router.get("/v2/health/ready")
async def server_ready(request: Request) -> Response:
    """Readiness: 200 once a model is loaded, 503 until then."""
    ready = request.app.state.holder.current is not None
    return json_response({"ready": ready}, 200 if ready else 503)


@router.get("/v2/models/{name}")
async def model_metadata(name: str, request: Request) -> Response:
    """The served model's metadata: one input per feature (name, datatype, shape)."""
    return _metadata(request, name, None)


@router.get("/v2/models/{name}/versions/{version}")
async def model_version_metadata(name: str, version: str, request: Request) -> Response:
    """A served version's metadata (the champion's, or a shadow/canary challenger's)."""
    return _metadata(request, name, version)


def _metadata(request: Request, name: str, version: str | None) -> Response:
    try:
        return json_response(metadata(served_model(request.app.state, name, version)))
    except (ApiError, ModelNotReadyError) as exc:
        return _v2_error(exc)


@router.get("/v2/models/{name}/ready")
async def model_ready(name: str, request: Request) -> Response:
    """200 when this model is loaded and answering, else 404 or 503 with the reason."""
    return _ready(request, name, None)


@router.get("/v2/models/{name}/versions/{version}/ready")
async def model_version_ready(name: str, version: str, request: Request) -> Response:
    """200 when this version is loaded and answering."""
    return _ready(request, name, version)


def _ready(request: Request, name: str, version: str | None) -> Response:
    try:
        model = served_model(request.app.state, name, version)
    except (ApiError, ModelNotReadyError) as exc:
        return _v2_error(exc)
    return json_response({"name": model.name, "version": model.version, "ready": True})


# -- inference (hot path) -------------------------------------------------------------------------
async def infer(call: Call) -> tuple[bytes, str]:
    """POST /v2/models/{name}[/versions/{version}]/infer: tensors in, `predict` and
    `predict_proba` out, one prediction id per row in the response's `parameters`."""
    name, version = _address(call.path)
    pinned = served_model(call.state, name, version)
    body = await call.body()
    payload, binary = _split(call, body)
    try:
        request = decode_request(payload, pinned.validator, binary)
    except InputValidationError as exc:
        raise invalid(exc, call) from None
    route = call.route.template
    model, labels, proba, ids, unseen = await predict_records(
        call, request.records, route, pinned=pinned if version is not None else None
    )
    answer = {
        "model_name": model.name,
        "model_version": model.version,
        "id": request.request_id if request.request_id is not None else str(uuid.uuid4()),
        "parameters": {"prediction_ids": ids},
        "outputs": encode_outputs(labels, proba, request.outputs),
    }
    if proba is not None:
        answer["parameters"]["classes"] = list(model.class_keys)
    if unseen:  # MLOPS_UNSEEN_CATEGORY=missing: the categories scored as missing
        answer["parameters"]["unseen"] = unseen
    return dumps(answer), model.version


def _address(path: str) -> tuple[str, str | None]:
    rest = path[len(PREFIX) : -len(INFER_SUFFIX)]
    name, found, version = rest.partition("/versions/")
    return (name, version) if found else (rest, None)


def _split(call: Call, body: bytes) -> tuple[Any, bytes]:
    """(the JSON request, the binary tensor data after it, if any)."""
    length = call.headers.get(BINARY_HEADER)
    if length is None:
        return parse_json(body), b""
    if not length.isdigit() or int(length) > len(body):
        raise ApiError(400, f"{BINARY_HEADER}: expected the JSON header's length in bytes")
    return parse_json(body[: int(length)]), body[int(length) :]


INFER = Route(INFER_ROUTE, infer, "v2")
VERSIONED_INFER = Route(VERSIONED_INFER_ROUTE, infer, "v2")


def match(path: str) -> Route | None:
    """The v2 inference route of `path`, or None."""
    if not (path.startswith(PREFIX) and path.endswith(INFER_SUFFIX)):
        return None
    return VERSIONED_INFER if "/versions/" in path else INFER
