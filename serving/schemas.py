"""Request/response schemas, and the OpenAPI document built from the served model.

Prediction routes read raw JSON (speed), so their request bodies are declared here by reference
to `#/components/schemas/Record`, which `openapi()` fills in from the loaded model's features
(types, categories, required fields) and its logged input example. /docs and schemathesis see
the real record schema, and it follows the model across hot swaps.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import (
    BaseModel,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
)

from serving.routes import v2_docs

RECORD_REF = {"$ref": "#/components/schemas/Record"}
RECORDS = {"type": "array", "items": RECORD_REF, "minItems": 1}

PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"anyOf": [RECORD_REF, RECORDS]}}},
    }
}
KSERVE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"instances": RECORDS},
                    "required": ["instances"],
                }
            }
        },
    }
}
INVOCATIONS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {
                            "type": "object",
                            "properties": {
                                "dataframe_split": {
                                    "type": "object",
                                    "properties": {
                                        "columns": {"type": "array", "items": {"type": "string"}},
                                        "data": {"type": "array", "items": {"type": "array"}},
                                    },
                                    "required": ["columns", "data"],
                                },
                                "params": {"type": "object"},
                            },
                            "required": ["dataframe_split"],
                            "additionalProperties": False,
                        },
                        {
                            "type": "object",
                            "properties": {
                                "dataframe_records": RECORDS,
                                "params": {"type": "object"},
                            },
                            "required": ["dataframe_records"],
                            "additionalProperties": False,
                        },
                        {
                            "type": "object",
                            "properties": {"instances": RECORDS, "params": {"type": "object"}},
                            "required": ["instances"],
                            "additionalProperties": False,
                        },
                        {
                            "type": "object",
                            "properties": {"inputs": RECORDS, "params": {"type": "object"}},
                            "required": ["inputs"],
                            "additionalProperties": False,
                        },
                    ]
                }
            },
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}

_ERRORS = {
    "400": {"description": "not JSON / CSV, or an MLflow input format error"},
    "401": {"description": "API key missing (MLOPS_PROTECT_PREDICT=true)"},
    "413": {"description": "body over MLOPS_MAX_BODY_BYTES"},
    "415": {"description": "wrong content type"},
    "422": {"description": "a record does not fit the model: the field is named"},
    "503": {"description": "no model loaded yet (the reason is given)"},
}
# The prediction routes are served by a plain ASGI chain (serving.asgi), so their
# OpenAPI entries are written here rather than derived from FastAPI routes.
PREDICTION_PATHS: dict[str, Any] = {
    "/predict": {
        "post": {
            "tags": ["predictions"],
            "summary": "Predict one record or a list",
            "description": "Predictions, class probabilities (classifiers), `model_name`, "
            "`model_version` and one `prediction_id` per row; with MLOPS_UNSEEN_CATEGORY=missing, "
            "`unseen` lists the categories the model never saw, scored as missing "
            "(`{row, field, value}`).",
            "operationId": "predict",
            **PREDICT_BODY,
            "responses": {"200": {"description": "predictions"}, **_ERRORS},
        }
    },
    "/invocations": {
        "post": {
            "tags": ["predictions"],
            "summary": "MLflow scoring protocol",
            "description": "As `mlflow models serve`: `dataframe_split`, `dataframe_records`, "
            '`instances` or `inputs` JSON, or CSV; answers `{"predictions": [...]}`.',
            "operationId": "invocations",
            **INVOCATIONS_BODY,
            "responses": {"200": {"description": "predictions"}, **_ERRORS},
        }
    },
    "/v1/models/{name}:predict": {
        "post": {
            "tags": ["predictions"],
            "summary": "KServe v1 predict",
            "operationId": "kserve_predict",
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            **KSERVE_BODY,
            "responses": {
                "200": {"description": "predictions"},
                "404": {"description": "no model of that name"},
                **_ERRORS,
            },
        }
    },
}

Label = StrictStr | StrictInt | StrictFloat | StrictBool


# Ground truth for one prediction, sent later by the client.
class Feedback(BaseModel):
    prediction_id: str = Field(min_length=1, max_length=100, examples=["6f1c7d2e-..."])
    actual: Label = Field(examples=[1])

    @field_validator("prediction_id", "actual")
    @classmethod
    def _utf8(cls, value: Any) -> Any:
        # JSON may carry lone surrogates; MongoDB (BSON) accepts only valid UTF-8 text.
        if isinstance(value, str):
            value.encode("utf-8")
        if isinstance(value, int) and abs(value) > 2**63 - 1:
            raise ValueError("integer out of range")
        return value


# What POST /feedback answers.
class FeedbackAnswer(BaseModel):
    received: int
    stored: int


def openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with `Record` taken from the model being served right now."""
    holder = app.state.holder
    model = holder.current if holder is not None else None
    version = model.version if model is not None else None
    cached = getattr(app.state, "openapi_cache", None)
    if cached is not None and cached[0] == version:
        return cached[1]
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    if model is not None:
        record = model.validator.json_schema()
        if model.example:
            record["example"] = model.example[0]
        examples = _examples(model.example)
    else:  # no model yet: any object; requests answer 503 until one is loaded
        record = {"type": "object", "description": "the served model's features (none loaded)"}
        examples = {}
    doc.setdefault("components", {}).setdefault("schemas", {})["Record"] = record
    doc.setdefault("paths", {}).update(PREDICTION_PATHS)
    doc["paths"].update(v2_docs.paths(model))
    for path, method, key in (
        ("/predict", "post", "record"),
        ("/invocations", "post", "dataframe_records"),
        ("/v1/models/{name}:predict", "post", "instances"),
    ):
        op = doc.get("paths", {}).get(path, {}).get(method)
        if op and key in examples:
            op["requestBody"]["content"]["application/json"]["examples"] = examples[key]
    app.state.openapi_cache = (version, doc)
    return doc


def _examples(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    if not rows:
        return {}
    first = rows[0]
    columns = list(first)
    return {
        "record": {
            "one": {"summary": "one record", "value": first},
            "batch": {"summary": "a list of records", "value": rows[:3]},
        },
        "dataframe_records": {
            "dataframe_records": {"value": {"dataframe_records": rows[:2]}},
            "dataframe_split": {
                "value": {
                    "dataframe_split": {
                        "columns": columns,
                        "data": [[r[c] for c in columns] for r in rows[:2]],
                    }
                }
            },
            "instances": {"value": {"instances": rows[:2]}},
            "inputs": {"value": {"inputs": rows[:2]}},
        },
        "instances": {"instances": {"value": {"instances": rows[:2]}}},
    }
