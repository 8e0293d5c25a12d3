"""The feature spec: inference, encoding of raw records, and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from lifecycle.core.errors import InputValidationError
from lifecycle.data import synthetic
from lifecycle.model.predictor import FeatureSpec


@pytest.fixture(scope="module")
def spec() -> FeatureSpec:
    return FeatureSpec.infer(synthetic.generate_churn(500, seed=0), "churn", "binary")


def test_infer_marks_strings_categorical_and_keeps_order(spec: FeatureSpec) -> None:
    kinds = {f.name: f.kind for f in spec.features}
    assert kinds["gender"] == "categorical" and kinds["customer_age"] == "integer"
    assert kinds["credit_limit"] == "numeric"
    assert spec.names[0] == "customer_age" and "churn" not in spec.names
    assert spec.classes == (0, 1)


def test_encode_records_matches_encode_frame(spec: FeatureSpec) -> None:
    frame = synthetic.churn_features(50, seed=4)
    a = spec.encode_frame(frame)
    b = spec.encode_records(frame.to_dict("records"))
    np.testing.assert_array_equal(a, b)


def test_encode_unknown_category_names_field(spec: FeatureSpec) -> None:
    record = synthetic.churn_features(1, seed=4).to_dict("records")[0]
    record["card_category"] = "Diamond"
    with pytest.raises(InputValidationError) as info:
        spec.encode_records([record])
    assert info.value.field == "card_category" and "Diamond" in str(info.value)


def test_spec_round_trips_through_json(spec: FeatureSpec, tmp_path) -> None:
    spec.save(tmp_path / "spec.json")
    assert FeatureSpec.load(tmp_path / "spec.json") == spec


def test_decode_multiclass_returns_labels_and_probabilities() -> None:
    spec = FeatureSpec((), "y", "multiclass", ("a", "b", "c"))
    labels, proba = spec.decode(np.array([0.1, 0.7, 0.2, 0.5, 0.3, 0.2], dtype=np.float32))
    assert labels == ["b", "a"] and proba.shape == (2, 3)
