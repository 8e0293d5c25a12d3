"""Live metrics with their confidence intervals.

The metric is computed exactly on the labelled rows (`reporting.drift.live_metrics`); its 95 %
interval is a percentile bootstrap, vectorised: for classifiers the confusion matrix is
resampled (a multinomial draw over its cells is a resample of the rows), for regression the
rows' errors are. A binary model's ROC AUC comes from the probabilities logged with each answer,
on the rows that have them, with DeLong's interval (lifecycle.model.roc_auc.roc_auc_interval).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lifecycle.model.predictor import FeatureSpec
from lifecycle.model.roc_auc import positive_scores, roc_auc_interval
from reporting.drift import label_keys, live_metrics, positive_mask

CONFIDENCE = 0.95
CLASSIFICATION_RESAMPLES = 2000
REGRESSION_RESAMPLES = 200


def live_metrics_with_intervals(
    spec: FeatureSpec,
    actual: Any,
    predicted: Any,
    probabilities: Any = None,
    seed: int = 0,
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """(metrics, {metric: [low, high]}) over the labelled pairs; empty for no pairs.
    `probabilities`: each row's logged {str(class): probability} (None where not logged)."""
    if len(actual) == 0:
        return {}, {}
    metrics = live_metrics(spec, actual, predicted)
    rng = np.random.default_rng(seed)
    if spec.task == "regression":
        intervals = _regression_intervals(actual, predicted, rng)
    else:
        intervals = _classification_intervals(spec, actual, predicted, rng)
    if spec.task == "binary" and probabilities is not None:
        auc, low, high = live_roc_auc(spec, actual, probabilities)
        if np.isfinite(auc):
            metrics["roc_auc"], intervals["roc_auc"] = auc, [low, high]
    return metrics, {k: v for k, v in intervals.items() if k in metrics}


def live_roc_auc(spec: FeatureSpec, actual: Any, probabilities: Any) -> tuple[float, float, float]:
    """(ROC AUC, low, high) of a binary model on the labelled rows with logged probabilities;
    NaNs when fewer than one row of each class has them."""
    scores = positive_scores(probabilities, str(spec.classes[1]))
    return roc_auc_interval(positive_mask(actual, spec.classes), scores)


def confusion_matrix(spec: FeatureSpec, actual: Any, predicted: Any) -> np.ndarray:
    """Counts [true class, predicted class]; labels outside the spec's classes get one more
    row/column of their own (they are never correct)."""
    classes = [str(k) for k in label_keys(spec.classes)]
    index = {c: i for i, c in enumerate(classes)}
    other = len(classes)
    true = np.asarray([index.get(k, other) for k in label_keys(actual)], dtype=np.int64)
    pred = np.asarray([index.get(k, other) for k in label_keys(predicted)], dtype=np.int64)
    size = other + 1
    return np.bincount(true * size + pred, minlength=size * size).reshape(size, size)


def _classification_intervals(
    spec: FeatureSpec, actual: Any, predicted: Any, rng: np.random.Generator
) -> dict[str, list[float]]:
    cm = confusion_matrix(spec, actual, predicted)
    n = int(cm.sum())
    size = cm.shape[0]
    draws = rng.multinomial(n, cm.ravel() / n, size=CLASSIFICATION_RESAMPLES)
    draws = draws.reshape(-1, size, size).astype(float)
    diag = np.einsum("bii->bi", draws)
    accuracy = diag.sum(axis=1) / n
    rows, cols = draws.sum(axis=2), draws.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(rows + cols > 0, 2 * diag / (rows + cols), 0.0)
    n_classes = len(spec.classes)
    if spec.task == "binary":
        f1 = per_class[:, 1]  # the positive class is the spec's second (compute_metrics)
    else:
        # sklearn's macro F1 averages over the labels present in either column.
        present = (cm.sum(axis=0) + cm.sum(axis=1))[:n_classes] > 0
        f1 = per_class[:, :n_classes][:, present].mean(axis=1)
    return {"accuracy": _percentiles(accuracy), "f1": _percentiles(f1)}


def _regression_intervals(
    actual: Any, predicted: Any, rng: np.random.Generator
) -> dict[str, list[float]]:
    import pandas as pd

    y = pd.to_numeric(pd.Series(actual), errors="coerce").to_numpy(float)
    yhat = pd.to_numeric(pd.Series(predicted), errors="coerce").to_numpy(float)
    ok = ~(np.isnan(y) | np.isnan(yhat))
    y, err = y[ok], yhat[ok] - y[ok]
    n = len(y)
    if n == 0:
        return {}
    out: dict[str, list[float]] = {"rmse": [], "mae": [], "r2": []}
    chunk = max(1, min(REGRESSION_RESAMPLES, 2_000_000 // n))  # bounded memory per step
    for done in range(0, REGRESSION_RESAMPLES, chunk):
        idx = rng.integers(0, n, size=(min(chunk, REGRESSION_RESAMPLES - done), n))
        e, yy = err[idx], y[idx]
        sse = (e**2).sum(axis=1)
        sst = ((yy - yy.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
        out["rmse"] += list(np.sqrt(sse / n))
        out["mae"] += list(np.abs(e).mean(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            out["r2"] += list(1 - sse / sst)
    return {k: _percentiles(np.asarray(v)) for k, v in out.items()}


def _percentiles(values: np.ndarray) -> list[float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return []
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


@dataclass(frozen=True)
class LiveQuality:
    """The window's labelled rows: the live metrics over all of them (or the sample's, see
    `sampled`) with their intervals, and the sample's labelled rows (target renamed) for
    Evidently's quality preset, or None below the minimum."""

    labelled_rows: int
    metrics: dict[str, float]
    frame: pd.DataFrame | None
    intervals: dict[str, list[float]]
    rows: int = 0  # pairs the metrics were computed on
    sampled: bool = False
