"""Request records → validated feature matrix, in one pass and without pandas.

The rules come from the model's FeatureSpec (kinds, categories) and its MLflow signature
(column types and which columns are required). Every problem raises `InputValidationError`
whose `field` names the feature (or the request part) and whose message says what was expected.
A category the model never saw raises its subclass `UnseenCategoryError`, unless the caller
passes an `unseen` list (MLOPS_UNSEEN_CATEGORY=missing): the value is then scored as missing,
which is how XGBoost's native categorical support treats an unknown code, and noted in the list.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lifecycle.core.errors import InputValidationError, UnseenCategoryError
from lifecycle.model.predictor import FeatureSpec

# MLflow signature types that cannot hold a missing value: mlflow's own schema enforcement
# rejects a null in them, so we do too (and the API and `mlflow models serve` agree).
_NON_NULLABLE_TYPES = frozenset({"integer", "long", "boolean"})
# The booster sees float32; a larger value would become inf, which XGBoost refuses.
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# Integers beyond 2**53 are not exact as floats, and MongoDB stores at most 64-bit integers.
_MAX_EXACT_INT = 2**53


@dataclass(frozen=True)
class Column:
    """What one feature accepts."""

    name: str
    kind: str  # numeric | integer | categorical
    codes: Mapping[str, int]
    nullable: bool
    required: bool

    @property
    def expected(self) -> str:
        if self.kind == "categorical":
            return f"a string, one of {list(self.codes)}"
        return "an integer" if self.kind == "integer" else "a number"


class RecordValidator:
    """Checks raw records against the model's features and encodes them for the booster."""

    def __init__(self, spec: FeatureSpec, signature_inputs: Any | None = None) -> None:
        sig = {}
        if signature_inputs is not None:
            for col in getattr(signature_inputs, "inputs", []):
                if getattr(col, "name", None) is not None:
                    sig[col.name] = col
        columns = []
        for feat in spec.features:
            col = sig.get(feat.name)
            col_type = str(getattr(col, "type", "")).removeprefix("DataType.").lower()
            nullable = feat.nullable and col_type not in _NON_NULLABLE_TYPES
            required = bool(getattr(col, "required", True)) if col is not None else True
            codes = {c: i for i, c in enumerate(feat.categories)}
            columns.append(Column(feat.name, feat.kind, codes, nullable, required))
        self.columns: tuple[Column, ...] = tuple(columns)
        self.names = frozenset(c.name for c in columns)
        self.spec = spec

    # -- one value ------------------------------------------------------------------------------
    def _value(self, col: Column, value: Any, row: int, unseen: list | None = None) -> float:
        where = f" (row {row})" if row >= 0 else ""
        if value is None:
            if not col.nullable:
                raise InputValidationError(
                    col.name, f"null is not allowed; expected {col.expected}{where}"
                )
            return math.nan
        kind = col.kind
        vtype = type(value)
        if kind == "categorical":
            if vtype is not str:
                raise InputValidationError(
                    col.name, f"expected {col.expected}; got {_describe(value)}{where}"
                )
            code = col.codes.get(value)
            if code is None:
                if unseen is None:
                    raise UnseenCategoryError(
                        col.name,
                        f"unknown category {value!r}; expected one of {list(col.codes)}{where}",
                        value,
                    )
                unseen.append({"row": max(row, 0), "field": col.name, "value": value})
                return math.nan
            return float(code)
        if vtype is int:
            if abs(value) > _MAX_EXACT_INT:
                raise InputValidationError(col.name, f"{value} is out of range{where}")
            return float(value)
        if vtype is float:
            if math.isnan(value):
                if not col.nullable:
                    raise InputValidationError(
                        col.name, f"NaN is not allowed; expected {col.expected}{where}"
                    )
                return value
            if math.isinf(value):
                raise InputValidationError(
                    col.name, f"expected a finite number; got {value!r}{where}"
                )
            if abs(value) > _FLOAT32_MAX:
                raise InputValidationError(col.name, f"{value!r} is out of range{where}")
            if kind == "integer" and not value.is_integer():
                raise InputValidationError(col.name, f"expected an integer; got {value!r}{where}")
            return value
        raise InputValidationError(
            col.name, f"expected {col.expected}; got {_describe(value)}{where}"
        )

    # -- records --------------------------------------------------------------------------------
    def check_record(self, record: Any, row: int = -1, unseen: list | None = None) -> list[float]:
        """One record → its encoded row. Raises on a missing, extra or ill-typed field, and on
        an unseen category unless `unseen` collects it (`encode`)."""
        where = f" (row {row})" if row >= 0 else ""
        if not isinstance(record, dict):
            raise InputValidationError(
                "record" if row < 0 else f"records[{row}]",
                f"expected an object of feature values; got {_describe(record)}",
            )
        out = []
        for col in self.columns:
            if col.name in record:
                out.append(self._value(col, record[col.name], row, unseen))
            elif col.required:
                raise InputValidationError(
                    col.name, f"missing feature; expected {col.expected}{where}"
                )
            else:
                out.append(math.nan)
        if len(record) > len(out) or any(k not in self.names for k in record):
            extra = sorted(str(k) for k in record if k not in self.names)
            if extra:
                raise InputValidationError(
                    extra[0], f"unknown field; the model's features are {sorted(self.names)}{where}"
                )
        return out

    def encode(
        self, records: Sequence[Any], max_batch: int, unseen: list | None = None
    ) -> np.ndarray:
        """Validated records → float32 matrix in feature order (NaN = missing).

        `unseen`: None rejects an unseen category (`UnseenCategoryError`); a list scores it as
        missing and gets `{"row", "field", "value"}` appended for each one, in row order.
        """
        n = len(records)
        if n == 0:
            raise InputValidationError("records", "empty list; send at least one record")
        if n > max_batch:
            raise InputValidationError(
                "records", f"batch of {n} records is over the limit of {max_batch}"
            )
        if n == 1:
            rows = [self.check_record(records[0], -1, unseen)]
        else:
            rows = [self.check_record(rec, i, unseen) for i, rec in enumerate(records)]
        return np.asarray(rows, dtype=np.float32)

    def columns_to_records(self, columns: Any, field: str) -> list[dict[str, Any]]:
        """Column-oriented input ({name: [values]}) → records; lengths must agree."""
        if not isinstance(columns, dict) or not columns:
            raise InputValidationError(field, "expected a non-empty object of column lists")
        lengths = set()
        for name, values in columns.items():
            if not isinstance(values, list):
                raise InputValidationError(str(name), f"expected a list of values in {field!r}")
            lengths.add(len(values))
        if len(lengths) != 1:
            raise InputValidationError(field, "every column list must have the same length")
        names = list(columns)
        return [dict(zip(names, vals, strict=True)) for vals in zip(*columns.values(), strict=True)]

    def split_to_records(self, split: Any, field: str) -> list[dict[str, Any]]:
        """pandas 'split' orientation ({columns, data[, index]}) → records."""
        if not isinstance(split, dict):
            raise InputValidationError(field, "expected an object with 'columns' and 'data'")
        columns = split.get("columns")
        data = split.get("data")
        if not isinstance(data, list):
            raise InputValidationError(f"{field}.data", "expected a list of rows")
        if columns is None:
            columns = list(self.spec.names)
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise InputValidationError(f"{field}.columns", "expected a list of column names")
        records = []
        for i, row in enumerate(data):
            if not isinstance(row, list) or len(row) != len(columns):
                raise InputValidationError(
                    f"{field}.data[{i}]", f"expected a list of {len(columns)} values"
                )
            records.append(dict(zip(columns, row, strict=True)))
        return records

    def json_schema(self) -> dict[str, Any]:
        """The JSON schema of one record, for /openapi.json and /docs."""
        props: dict[str, Any] = {}
        for col in self.columns:
            if col.kind == "categorical":
                schema: dict[str, Any] = {"type": "string", "enum": list(col.codes)}
            elif col.kind == "integer":
                schema = {"type": "integer"}
            else:
                schema = {"type": "number"}
            if col.nullable:
                schema = {"anyOf": [schema, {"type": "null"}]}
            props[col.name] = schema
        return {
            "type": "object",
            "properties": props,
            "required": [c.name for c in self.columns if c.required],
            "additionalProperties": False,
        }


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"
