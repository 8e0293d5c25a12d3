"""The label-free estimate (lifecycle.model.estimate) pinned on cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lifecycle.model.estimate import (
    Calibration,
    CalibrationError,
    estimate_metrics,
    expected_confusion,
    fit_calibration,
    metric_from_confusion,
    outside,
)

IDENTITY = Calibration(classes=(0, 1), curves=(((0.0, 1.0), (0.0, 1.0)),), rows=10**12)
# Four rows: P(churn) 0.9, 0.8, 0.3, 0.1; the model answered 1, 1, 0, 0.
PROBA = np.array([[0.1, 0.9], [0.2, 0.8], [0.7, 0.3], [0.9, 0.1]])
PREDICTED = np.array([1, 1, 0, 0])


def test_expected_confusion_adds_each_rows_probabilities_to_its_predicted_column() -> None:
    confusion = expected_confusion(PROBA, PREDICTED)
    # [actual, predicted]: TN = 0.7 + 0.9, FN = 0.3 + 0.1, FP = 0.1 + 0.2, TP = 0.9 + 0.8
    assert confusion == pytest.approx(np.array([[1.6, 0.3], [0.4, 1.7]]))


def test_estimate_metrics_on_four_rows_matches_the_hand_computation() -> None:
    est = estimate_metrics(IDENTITY.apply(PROBA), PREDICTED, IDENTITY.rows)
    # Each row is right with probability 0.9, 0.8, 0.7, 0.9: expected accuracy 3.3 / 4.
    assert est["accuracy"].value == pytest.approx(0.825)
    # Poisson-binomial variance of the hits: 0.09 + 0.16 + 0.21 + 0.09 = 0.55, over n² = 16.
    spread = 1.959964 * math.sqrt(0.55 / 16)
    assert est["accuracy"].low == pytest.approx(0.825 - spread, abs=1e-6)
    assert est["accuracy"].high == 1.0  # 0.825 + 0.363 clipped
    # F1 = 2 TP / (2 TP + FP + FN) = 3.4 / (3.4 + 0.3 + 0.4)
    assert est["f1"].value == pytest.approx(3.4 / 4.1)
    assert est["f1"].low <= est["f1"].value <= est["f1"].high


def test_estimate_interval_widens_with_a_calibration_fitted_on_few_rows() -> None:
    proba = np.tile(PROBA, (500, 1))
    predicted = np.tile(PREDICTED, 500)
    wide = estimate_metrics(proba, predicted, calibration_rows=100)["accuracy"]
    narrow = estimate_metrics(proba, predicted, calibration_rows=10**9)["accuracy"]
    extra = 0.825 * 0.175 / 100
    assert wide.high - wide.value == pytest.approx(
        1.959964 * math.sqrt(0.55 * 500 / 2000**2 + extra)
    )
    assert narrow.high - narrow.value < wide.high - wide.value


def test_estimate_metrics_is_seeded() -> None:
    a = estimate_metrics(PROBA, PREDICTED, 1000, seed=3)["f1"]
    b = estimate_metrics(PROBA, PREDICTED, 1000, seed=3)["f1"]
    assert a == b


def test_calibration_apply_interpolates_the_isotonic_curve_and_clips() -> None:
    calibration = Calibration((0, 1), (((0.2, 0.8), (0.1, 0.9)),), rows=100)
    raw = np.array([[0.5, 0.5], [0.9, 0.1], [0.35, 0.65]])
    assert calibration.apply(raw)[:, 1] == pytest.approx([0.5, 0.1, 0.1 + 0.8 * 0.45 / 0.6])
    assert calibration.apply(raw).sum(axis=1) == pytest.approx([1, 1, 1])
    with pytest.raises(CalibrationError):
        calibration.apply(np.ones((2, 3)) / 3)


def test_fit_calibration_learns_that_an_overconfident_model_is_right_less_often() -> None:
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.5, 1.0, 4000)  # the model says 0.5 to 1.0 ...
    truth = rng.uniform(size=4000) < 0.5 + (raw - 0.5) / 2  # ... it is right half as much
    proba = np.column_stack([1 - raw, raw])
    calibration = fit_calibration(proba, truth.astype(int).tolist(), (0, 1))
    again = Calibration.from_dict(calibration.to_dict())
    assert again == calibration
    est = estimate_metrics(calibration.apply(proba), np.ones(4000, int), calibration.rows)
    assert est["accuracy"].value == pytest.approx(truth.mean(), abs=0.01)
    assert est["accuracy"].value < raw.mean() - 0.1


def test_multiclass_calibration_renormalises_and_macro_f1_reads_the_confusion() -> None:
    calibration = Calibration(
        ("a", "b", "c"), tuple(((0.0, 1.0), (0.0, 1.0)) for _ in range(3)), rows=50
    )
    proba = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])
    assert calibration.apply(proba) == pytest.approx(proba)
    confusion = expected_confusion(proba, np.array([0, 1, 2]))
    assert metric_from_confusion(confusion, "accuracy") == pytest.approx((0.6 + 0.7 + 0.8) / 3)
    f1 = [2 * confusion[k, k] / (confusion[k].sum() + confusion[:, k].sum()) for k in range(3)]
    assert metric_from_confusion(confusion, "f1") == pytest.approx(np.mean(f1))


def test_outside_reads_the_interval_bounds() -> None:
    assert outside({"low": 0.7, "high": 0.8}, 0.69)
    assert not outside({"low": 0.7, "high": 0.8}, 0.75)
