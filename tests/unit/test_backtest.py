"""reporting.backtest on a window built in memory: regression (no label-free estimate, mean
absolute difference, paired errors) and the exclusion of training rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from lifecycle.model.predictor import FeatureSpec, Predictor
from reporting.backtest import Replayed, backtest_window, describe_backtest
from reporting.estimate import CLASSIFICATION_ONLY
from reporting.window import ACTUAL, PREDICTION, WindowData

END = datetime(2026, 3, 1, tzinfo=UTC)


def _regressor(seed: int, rounds: int) -> Predictor:
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x": rng.normal(size=300), "z": rng.normal(size=300)})
    frame["y"] = 2 * frame["x"] - frame["z"] + rng.normal(scale=0.1, size=300)
    spec = FeatureSpec.infer(frame, "y", "regression")
    booster = xgb.train(
        {"objective": "reg:squarederror", "seed": seed},
        xgb.DMatrix(frame[["x", "z"]], label=frame["y"]),
        rounds,
    )
    return Predictor(booster, spec)


def _window(served: Predictor, rows: int = 40, labelled: int = 25) -> WindowData:
    rng = np.random.default_rng(7)
    features = pd.DataFrame({"x": rng.normal(size=rows), "z": rng.normal(size=rows)})
    answers, _ = served.predict_frame(features)
    truth = 2 * features["x"] - features["z"]
    frame = features.astype(object)
    frame[PREDICTION] = pd.Series(answers, dtype=object)
    frame[ACTUAL] = pd.Series(
        [t if i < labelled else None for i, t in enumerate(truth)], dtype=object
    )
    return WindowData(
        start=END - timedelta(hours=3),
        end=END,
        frame=frame,
        ids=np.asarray([f"id-{i}" for i in range(rows)], dtype=object),
        ts=np.asarray([END] * rows, dtype=object),
        versions=np.asarray(["1"] * rows, dtype=object),
        shadows=np.asarray([None] * rows, dtype=object),
        probabilities=np.asarray([None] * rows, dtype=object),
        total_rows=rows,
    )


def test_backtest_regression_reports_mean_absolute_difference_and_paired_errors() -> None:
    served, challenger = _regressor(1, 20), _regressor(2, 5)
    window = _window(served)
    doc = backtest_window(
        window, "m", "3h", Replayed("2", challenger), Replayed("1", None), ["id-0"], "rmse"
    )
    features = window.frame[["x", "z"]].iloc[1:].astype(float)
    new = np.asarray(challenger.predict_frame(features)[0])
    old = window.frame[PREDICTION].iloc[1:].to_numpy(dtype=float)
    assert doc["excluded_training_rows"] == 1 and doc["scored"] == 39
    assert doc["disagreement"] == pytest.approx(np.mean(np.abs(new - old)))
    truth = window.frame[ACTUAL].iloc[1:25].to_numpy(dtype=float)
    err_new, err_old = np.abs(new[:24] - truth), np.abs(old[:24] - truth)
    paired = doc["paired"]
    assert paired["test"] == "wilcoxon" and paired["pairs"] == 24
    assert paired["wins"] == int(np.sum(err_new < err_old))
    assert paired["losses"] == int(np.sum(err_old < err_new))
    assert paired["challenger_metric"] == pytest.approx(np.sqrt(np.mean((new[:24] - truth) ** 2)))
    assert doc["estimated"] == {
        "2": {"note": CLASSIFICATION_ONLY},
        "1": {"note": CLASSIFICATION_ONLY},
    }
    assert any("classification only" in line for line in describe_backtest(doc))


def test_backtest_replaying_the_served_regressor_disagrees_nowhere() -> None:
    served = _regressor(1, 20)
    doc = backtest_window(
        _window(served), "m", "3h", Replayed("1", served), Replayed("1", None), [], "rmse"
    )
    assert doc["disagreement"] == 0.0
    assert doc["paired"]["wins"] == doc["paired"]["losses"] == 0
