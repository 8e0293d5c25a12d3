"""/openapi.json entries of the v2 inference routes (served by the hot path, not FastAPI), with
an example request built from the served model's example rows."""

from __future__ import annotations

from typing import Any

from serving.holder import LoadedModel
from serving.routes.v2 import INFER_ROUTE, VERSIONED_INFER_ROUTE
from serving.tensors import datatype_of

_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string", "description": "a feature name"},
        "shape": {"type": "array", "items": {"type": "integer"}, "example": [2, 1]},
        "datatype": {"type": "string", "enum": ["BYTES", "INT64", "INT32", "FP64", "FP32"]},
        "data": {"type": "array", "items": {}},
        "parameters": {"type": "object"},
    },
}
REQUEST_SCHEMA = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string", "description": "echoed in the answer"},
        "parameters": {"type": "object", "example": {"content_type": "pd"}},
        "inputs": {"type": "array", "items": _TENSOR, "minItems": 1},
        "outputs": {
            "type": "array",
            "items": {"type": "object", "properties": {"name": {"type": "string"}}},
            "description": "predict and/or predict_proba (default: both)",
        },
    },
}
_ERRORS = {
    "400": {"description": 'a tensor or record does not fit the model: {"error": "..."}'},
    "401": {"description": "API key missing (MLOPS_PROTECT_PREDICT=true)"},
    "404": {"description": "no such model or version; the served version is named"},
    "413": {"description": "body over MLOPS_MAX_BODY_BYTES"},
    "503": {"description": "no model loaded yet"},
}


def example_request(rows: list[dict[str, Any]], model: LoadedModel) -> dict[str, Any]:
    """An inference request for `rows`: one [rows, 1] tensor per feature (pandas codec)."""
    return {
        "id": "example-1",
        "parameters": {"content_type": "pd"},
        "inputs": [
            {
                "name": c.name,
                "shape": [len(rows), 1],
                "datatype": datatype_of(c),
                "data": [r.get(c.name) for r in rows],
            }
            for c in model.validator.columns
        ],
    }


def paths(model: LoadedModel | None) -> dict[str, Any]:
    """The two infer paths, with examples when a model is loaded."""
    body: dict[str, Any] = {"schema": REQUEST_SCHEMA}
    if model is not None and model.example:
        body["examples"] = {
            "one": {"summary": "one row", "value": example_request(model.example[:1], model)},
            "batch": {"summary": "two rows", "value": example_request(model.example[:2], model)},
        }
    answer = {
        "description": "`predict` ([rows, 1]) and, for classifiers, `predict_proba` ([rows,"
        " classes]); the request `id`; `parameters.prediction_ids`, one per row (/feedback)"
    }
    out = {}
    for path, summary in (
        (INFER_ROUTE, "Open Inference Protocol (v2) infer"),
        (VERSIONED_INFER_ROUTE, "v2 infer on a version (the served one or a challenger)"),
    ):
        params = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
        if "{version}" in path:
            params.append(
                {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
            )
        out[path] = {
            "post": {
                "tags": ["open inference protocol (v2)"],
                "summary": summary,
                "operationId": "v2_infer" + ("_version" if "{version}" in path else ""),
                "parameters": params,
                "requestBody": {"required": True, "content": {"application/json": body}},
                "responses": {"200": answer, **_ERRORS},
            }
        }
    return out
