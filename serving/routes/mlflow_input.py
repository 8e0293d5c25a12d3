"""MLflow's scoring-server inputs for /invocations: its four JSON formats and CSV, as records."""

from __future__ import annotations

import csv
import io
from typing import Any

from lifecycle.core.errors import InputValidationError
from serving.errors import ApiError, from_validation
from serving.holder import LoadedModel

MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


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
