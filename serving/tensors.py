"""Open Inference Protocol (v2) tensors ↔ our records, for tabular models.

Requests follow MLServer's pandas codec (`"content_type": "pd"`): one tensor per feature column,
shape `[rows]` or `[rows, 1]`, strings as `BYTES`, integers as `INT64`/`INT32` (any INT/UINT),
floats as `FP64`/`FP32`, missing values as `null`. Tensor data may be flat or nested, as JSON or
in Triton's binary tensor data extension (what `tritonclient` sends by default). Each problem
raises `InputValidationError` naming the input; the records then go through the same
`RecordValidator` as /predict.
"""

from __future__ import annotations

import functools
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from lifecycle.core.errors import InputValidationError
from serving.validation import Column, RecordValidator

NUMPY_TYPES = {
    "BOOL": np.bool_,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
INTEGER_TYPES = frozenset(k for k in NUMPY_TYPES if "INT" in k)
NUMBER_TYPES = INTEGER_TYPES | {"FP16", "FP32", "FP64"}
OUTPUTS = ("predict", "predict_proba")
_NONE = type(None)
# The JSON types each datatype's values may have (exact types: a bool is no integer here).
_VALUE_TYPES = {"BYTES": {str, _NONE}, "BOOL": {bool, _NONE}}
_VALUE_TYPES.update({t: {int, _NONE} for t in INTEGER_TYPES})
_VALUE_TYPES.update({t: {int, float, _NONE} for t in ("FP16", "FP32", "FP64")})


@dataclass(frozen=True)
class InferInput:
    """A decoded request: records, the id to echo and the outputs asked for."""

    records: list[dict[str, Any]]
    request_id: str | None
    outputs: tuple[str, ...]


def datatype_of(column: Column) -> str:
    """The datatype a feature is described with in the model's metadata."""
    if column.kind == "categorical":
        return "BYTES"
    return "INT64" if column.kind == "integer" else "FP64"


def decode_request(payload: Any, validator: RecordValidator, binary: bytes = b"") -> InferInput:
    """An inference request (parsed JSON) → records for `validator`."""
    if not isinstance(payload, dict):
        raise InputValidationError("body", "expected an inference request object")
    tensors = payload.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise InputValidationError("inputs", "expected a non-empty list of input tensors")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InputValidationError("id", "expected a string")
    columns: dict[str, list[Any]] = {}
    offset = 0
    accepted = _accepted(validator)
    for i, tensor in enumerate(tensors):
        name, values, offset = _column(tensor, i, accepted, binary, offset)
        if name in columns:
            raise InputValidationError(name, "this input is given twice")
        columns[name] = values
    if offset != len(binary):
        raise InputValidationError("inputs", "binary data left over after the last input")
    rows = _rows(columns)
    names = list(columns)
    records = [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]
    return InferInput(records, request_id, _outputs(payload.get("outputs"), rows))


@functools.lru_cache(maxsize=16)
def _accepted(validator: RecordValidator) -> dict[str, tuple[Column, dict[str, set[type]]]]:
    """Each feature's column by name, with the JSON value types of each datatype it accepts
    (once per loaded model, not per request)."""
    found = {}
    for c in validator.columns:
        allowed = ("BYTES",) if c.kind == "categorical" else NUMBER_TYPES
        found[c.name] = (c, {t: _VALUE_TYPES[t] for t in allowed})
    return found


def _column(
    tensor: Any, index: int, accepted: dict[str, Any], binary: bytes, offset: int
) -> tuple[str, list[Any], int]:
    """One input tensor → (its feature name, its values, where the next binary data starts).

    The usual tensor (known name and datatype, shape [rows, 1], flat JSON data of the right
    types) is taken as it is; anything else goes through `_checked_column`, which names what is
    wrong."""
    if type(tensor) is dict and "parameters" not in tensor:
        name, shape, data = tensor.get("name"), tensor.get("shape"), tensor.get("data")
        found = accepted.get(name) if type(name) is str else None
        value_types = found[1].get(tensor.get("datatype")) if found is not None else None
        if (
            value_types is not None
            and type(data) is list
            and type(shape) is list
            and len(shape) == 2
            and shape[0] == len(data)
            and type(shape[0]) is int
            and type(shape[1]) is int
            and shape[1] == 1
            and all(type(v) in value_types for v in data)
        ):
            return name, data, offset
    return _checked_column(tensor, index, accepted, binary, offset)


def _checked_column(
    tensor: Any, index: int, accepted: dict[str, Any], binary: bytes, offset: int
) -> tuple[str, list[Any], int]:
    name = tensor.get("name") if isinstance(tensor, dict) else None
    if not isinstance(name, str):
        raise InputValidationError(f"inputs[{index}]", "expected a tensor with a string name")
    if name not in accepted:
        raise InputValidationError(name, f"unknown input; this model takes {list(accepted)}")
    column = accepted[name][0]
    datatype = tensor.get("datatype")
    _check_datatype(name, datatype, column)
    size = _size(name, tensor.get("shape"))
    parameters = tensor.get("parameters") or {}
    length = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if length is not None:
        if not _is_count(length) or offset + length > len(binary):
            raise InputValidationError(name, "binary_data_size: beyond the binary data sent")
        values = _from_binary(name, datatype, binary[offset : offset + length])
        offset += length
    elif "data" in tensor:
        values = _flatten(name, tensor["data"])
        _check_values(name, datatype, values)
    else:
        raise InputValidationError(name, "expected 'data' (or binary data)")
    if len(values) != size:
        shape = tensor["shape"]
        raise InputValidationError(name, f"shape {shape} holds {size} values, data {len(values)}")
    return name, values, offset


def _size(name: str, shape: Any) -> int:
    """The number of values a one-column shape holds: [rows] or [rows, 1]."""
    if (  # the usual case, checked cheaply
        type(shape) is list
        and 1 <= len(shape) <= 2
        and type(shape[0]) is int
        and shape[0] >= 0
        and (len(shape) == 1 or (type(shape[1]) is int and shape[1] == 1))
    ):
        return shape[0]
    if not isinstance(shape, list) or not shape or not all(_is_count(d) for d in shape):
        raise InputValidationError(name, "shape: expected a list of non-negative integers")
    size = math.prod(shape)
    if size != shape[0]:
        raise InputValidationError(name, f"shape {shape}: one column per input, [rows, 1]")
    return size


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_datatype(name: str, datatype: Any, column: Column) -> None:
    if datatype != "BYTES" and datatype not in NUMPY_TYPES:
        raise InputValidationError(name, f"datatype: unknown datatype {datatype!r}")
    if column.kind == "categorical" and datatype != "BYTES":
        raise InputValidationError(name, f"datatype: expected BYTES (strings), got {datatype}")
    if column.kind != "categorical" and datatype not in NUMBER_TYPES:
        wanted = "INT64 or INT32" if column.kind == "integer" else "FP64 or FP32"
        raise InputValidationError(name, f"datatype: expected {wanted}, got {datatype}")


def _flatten(name: str, data: Any) -> list[Any]:
    if type(data) is not list:
        raise InputValidationError(name, "data: expected a list")
    if not data or type(data[0]) is not list:
        return data  # flat; a list further on is refused by _check_values
    flat: list[Any] = []
    for row in data:  # nested row-major: [[v], [v], ...]
        if type(row) is not list or any(type(v) is list for v in row):
            raise InputValidationError(name, "data: expected [v, ...] or [[v], ...]")
        flat.extend(row)
    return flat


def _check_values(name: str, datatype: str, values: list[Any]) -> None:
    ok = _VALUE_TYPES[datatype]
    for value in values:
        if type(value) not in ok:
            raise InputValidationError(name, f"data: {datatype} tensor holds {repr(value)[:40]}")


def _from_binary(name: str, datatype: str, data: bytes) -> list[Any]:
    """Triton's binary tensor data extension: raw little-endian values; BYTES as a 4-byte
    little-endian length before each element."""
    if datatype != "BYTES":
        dtype = np.dtype(NUMPY_TYPES[datatype]).newbyteorder("<")
        if len(data) % dtype.itemsize:
            raise InputValidationError(name, f"binary data is not a whole number of {datatype}")
        return np.frombuffer(data, dtype=dtype).tolist()
    values, at = [], 0
    while at < len(data):
        if at + 4 > len(data):
            raise InputValidationError(name, "binary BYTES data: a length is cut short")
        (length,) = struct.unpack_from("<I", data, at)
        at += 4
        if at + length > len(data):
            raise InputValidationError(name, "binary BYTES data: an element is cut short")
        try:
            values.append(data[at : at + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise InputValidationError(name, "binary BYTES data: not UTF-8 text") from None
        at += length
    return values


def _rows(columns: dict[str, list[Any]]) -> int:
    counts = {name: len(values) for name, values in columns.items()}
    rows = max(counts.values())
    short = [name for name, n in counts.items() if n != rows]
    if short:
        raise InputValidationError(short[0], f"has {counts[short[0]]} rows; other inputs {rows}")
    return rows


def _outputs(requested: Any, rows: int) -> tuple[str, ...]:
    if requested is None:
        return OUTPUTS
    if not isinstance(requested, list):
        raise InputValidationError("outputs", "expected a list of {'name': ...}")
    names = []
    for i, out in enumerate(requested):
        name = out.get("name") if isinstance(out, dict) else None
        if name not in OUTPUTS:
            raise InputValidationError(f"outputs[{i}]", f"unknown output; there are {OUTPUTS}")
        names.append(name)
    return tuple(names)


def label_datatype(labels: list[Any]) -> str:
    """The datatype of the `predict` output: the labels' Python type."""
    kinds = {type(v) for v in labels}
    if kinds <= {str}:
        return "BYTES"
    if kinds <= {bool}:
        return "BOOL"
    return "INT64" if kinds <= {int} else "FP64"


def encode_outputs(
    labels: list[Any], proba: np.ndarray | None, wanted: tuple[str, ...]
) -> list[dict[str, Any]]:
    """`predict` ([rows, 1]) and, for classifiers, `predict_proba` ([rows, classes])."""
    outputs = []
    if "predict" in wanted:
        outputs.append(
            {
                "name": "predict",
                "shape": [len(labels), 1],
                "datatype": label_datatype(labels),
                "data": labels,
            }
        )
    if "predict_proba" in wanted and proba is not None:
        outputs.append(
            {
                "name": "predict_proba",
                "shape": list(proba.shape),
                "datatype": "FP32" if proba.dtype == np.float32 else "FP64",
                "data": proba.ravel().tolist(),
            }
        )
    return outputs
