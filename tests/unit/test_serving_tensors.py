"""Open Inference Protocol tensors → records (serving.tensors): JSON and binary tensor data."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from lifecycle.core.errors import InputValidationError
from lifecycle.model.predictor import FeatureSpec
from serving.tensors import decode_request, encode_outputs, label_datatype
from serving.validation import RecordValidator


@pytest.fixture(scope="module")
def validator() -> RecordValidator:
    import pandas as pd

    frame = pd.DataFrame({"age": [30, 40], "plan": ["a", "b"], "spend": [1.5, 2.5], "y": [0, 1]})
    return RecordValidator(FeatureSpec.infer(frame, "y", "binary"))


def _strings(*values: str) -> bytes:
    return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)


def test_json_tensors_become_records_flat_or_nested(validator) -> None:
    request = {
        "id": "r1",
        "inputs": [
            {"name": "age", "shape": [2, 1], "datatype": "INT64", "data": [[30], [41]]},
            {"name": "plan", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]},
            {"name": "spend", "shape": [2, 1], "datatype": "FP32", "data": [1, None]},
        ],
    }
    decoded = decode_request(request, validator)
    assert decoded.records == [
        {"age": 30, "plan": "a", "spend": 1},
        {"age": 41, "plan": "b", "spend": None},
    ]
    assert decoded.request_id == "r1" and decoded.outputs == ("predict", "predict_proba")


def test_binary_tensor_data_is_read_in_input_order(validator) -> None:
    ages = np.array([30, 41], dtype="<i4").tobytes()
    plans = _strings("a", "bé")
    spend = np.array([1.5, 2.5], dtype="<f8").tobytes()
    inputs = [
        {"name": n, "shape": [2, 1], "datatype": d, "parameters": {"binary_data_size": len(b)}}
        for n, d, b in (("age", "INT32", ages), ("plan", "BYTES", plans), ("spend", "FP64", spend))
    ]
    decoded = decode_request({"inputs": inputs}, validator, ages + plans + spend)
    assert [r["plan"] for r in decoded.records] == ["a", "bé"]
    assert [r["age"] for r in decoded.records] == [30, 41]
    assert [r["spend"] for r in decoded.records] == [1.5, 2.5]


@pytest.mark.parametrize(
    ("datatype", "data", "message"),
    [
        ("BYTES", struct.pack("<I", 9) + b"ab", "cut short"),
        ("BYTES", b"\x01\x00", "cut short"),
        ("BYTES", struct.pack("<I", 1) + b"\xff", "not UTF-8"),
        ("INT64", b"\x00" * 7, "whole number"),
    ],
)
def test_broken_binary_data_names_the_input(validator, datatype, data, message) -> None:
    name = "plan" if datatype == "BYTES" else "age"
    tensor = {"name": name, "shape": [1], "datatype": datatype}
    tensor["parameters"] = {"binary_data_size": len(data)}
    with pytest.raises(InputValidationError, match=message) as err:
        decode_request({"inputs": [tensor]}, validator, data)
    assert err.value.field == name


def test_binary_data_left_over_is_refused(validator) -> None:
    tensor = {"name": "age", "shape": [1], "datatype": "INT64", "data": [3]}
    with pytest.raises(InputValidationError, match="left over"):
        decode_request({"inputs": [tensor]}, validator, b"\x00")


def test_outputs_carry_shape_and_datatype() -> None:
    proba = np.array([[0.25, 0.75]], dtype=np.float32)
    predict, predict_proba = encode_outputs([1], proba, ("predict", "predict_proba"))
    assert predict == {"name": "predict", "shape": [1, 1], "datatype": "INT64", "data": [1]}
    assert predict_proba["shape"] == [1, 2] and predict_proba["datatype"] == "FP32"
    assert encode_outputs(["yes"], None, ("predict_proba",)) == []
    assert [label_datatype(v) for v in (["a"], [True], [1], [1.5])] == [
        "BYTES",
        "BOOL",
        "INT64",
        "FP64",
    ]
