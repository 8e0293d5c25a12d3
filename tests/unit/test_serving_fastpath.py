"""The API's fast path (validator → C predictor → decode) against the MLflow pyfunc."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lifecycle.data.synthetic import generate_churn
from lifecycle.model.predictor import FeatureSpec, Predictor
from lifecycle.model.pyfunc import LifecycleModel
from serving.booster import DensePredictor
from serving.validation import RecordValidator


def _train(frame: pd.DataFrame, target: str, task: str, params: dict) -> Predictor:
    import xgboost as xgb

    spec = FeatureSpec.infer(frame, target, task)
    y = frame[target]
    if task != "regression":
        index = {c: i for i, c in enumerate(spec.classes)}
        y = y.map(index)
    dtrain = xgb.DMatrix(
        spec.encode_frame(frame),
        label=y.to_numpy(dtype=np.float32),
        feature_types=[f.xgb_type for f in spec.features],
        enable_categorical=True,
    )
    booster = xgb.train({**params, "max_depth": 4, "nthread": 1}, dtrain, num_boost_round=20)
    booster.set_param({"nthread": 1})
    return Predictor(booster, spec)


@pytest.fixture(scope="module")
def churn_predictor() -> Predictor:
    return _train(generate_churn(800, seed=3), "churn", "binary", {"objective": "binary:logistic"})


def _pyfunc(predictor: Predictor) -> LifecycleModel:
    model = LifecycleModel()
    model.predictor = predictor
    return model


def _mixed_batch() -> list[dict]:
    """Typical rows plus edge cases: nulls in nullable columns, integral floats, rare values."""
    records = generate_churn(40, seed=99).drop(columns=["churn"]).to_dict(orient="records")
    records[1]["credit_limit"] = None
    records[2]["education_level"] = None
    records[3]["avg_utilization_ratio"] = None
    records[3]["total_trans_amt"] = 0
    records[4]["customer_age"] = 61.0  # an integral float in an integer column
    records[5]["card_category"] = "Platinum"
    return records


def test_fast_path_equals_pyfunc_on_mixed_batch(churn_predictor: Predictor) -> None:
    records = _mixed_batch()
    validator = RecordValidator(churn_predictor.spec)
    matrix = validator.encode(records, max_batch=100)
    fast_labels, fast_proba = churn_predictor.spec.decode(
        DensePredictor(churn_predictor.booster).predict(matrix)
    )
    frame = pd.DataFrame(records)
    pyfunc = _pyfunc(churn_predictor)
    assert fast_labels == pyfunc.predict(None, frame).tolist()
    expected = pyfunc.predict(None, frame, params={"probabilities": True}).to_numpy()
    np.testing.assert_array_equal(fast_proba, expected)


def test_dense_predictor_equals_inplace_predict_multiclass_and_regression() -> None:
    from sklearn.datasets import load_diabetes, load_iris

    iris = load_iris(as_frame=True).frame
    multi = _train(iris, "target", "multiclass", {"objective": "multi:softprob", "num_class": 3})
    diabetes = load_diabetes(as_frame=True).frame
    reg = _train(diabetes, "target", "regression", {"objective": "reg:squarederror"})
    for predictor, frame in ((multi, iris), (reg, diabetes)):
        matrix = predictor.spec.encode_frame(frame.drop(columns=["target"]))
        fast = DensePredictor(predictor.booster).predict(matrix)
        slow = predictor.booster.inplace_predict(matrix)
        np.testing.assert_array_equal(fast, slow.reshape(-1))
        labels, _ = predictor.spec.decode(fast)
        assert labels == _pyfunc(predictor).predict(None, frame).tolist()


def test_dense_predictor_one_row_matches_batch(churn_predictor: Predictor) -> None:
    records = _mixed_batch()
    validator = RecordValidator(churn_predictor.spec)
    dense = DensePredictor(churn_predictor.booster)
    batch = dense.predict(validator.encode(records, 100))
    single = [dense.predict(validator.encode([r], 100))[0] for r in records]
    assert batch.tolist() == single
    assert not any(math.isnan(v) for v in single)
