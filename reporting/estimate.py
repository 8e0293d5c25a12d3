"""A report's label-free performance estimate (CBPE, lifecycle.model.estimate) and its check
against the labels that arrived: the `estimated` and `concept_drift` parts of a report.

The estimate covers the window's sampled rows answered by the reported version (the version
whose calibration it uses), from the class probabilities the API logged with each prediction.
When enough of those rows are labelled, the same estimate on the labelled rows alone is set
against the metric realized on them: a realized value outside the interval means the model's
confidence no longer matches its hit rate, which covariate drift alone does not cause.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from lifecycle.model.estimate import (
    METHOD,
    Calibration,
    Interval,
    estimate_metrics,
    estimated_metric,
    metric_from_confusion,
    outside,
)
from lifecycle.model.predictor import FeatureSpec
from reporting.reference import Reference
from reporting.window import ACTUAL, PREDICTION, WindowData

CLASSIFICATION_ONLY = "estimate: classification only"


@dataclass(frozen=True)
class WindowEstimate:
    """`estimated` ({metric, value, low, high, rows, method, accuracy, f1, and roc_auc for a
    binary model}) or None with the reason; `concept` the check on labelled rows (None below
    the minimum, or when the labelled rows hold one class and the metric is ROC AUC: the note
    then says so); the seconds taken."""

    estimated: dict[str, Any] | None
    note: str
    concept: dict[str, Any] | None = None
    seconds: float = 0.0

    @property
    def concept_drift_suspected(self) -> bool:
        return bool(self.concept and self.concept["suspected"])


def estimate_window(
    window: WindowData, reference: Reference, primary: str, min_labelled: int
) -> WindowEstimate:
    """The window's estimate, and the concept-drift check once `min_labelled` rows of the
    estimated ones are labelled."""
    t0 = time.perf_counter()
    spec = reference.spec
    if not spec.is_classifier:
        return WindowEstimate(None, CLASSIFICATION_ONLY)
    if reference.calibration is None:
        return WindowEstimate(None, f"estimate: version {reference.version} has no calibration")
    calibration = Calibration.from_dict(reference.calibration)
    rows = _usable_rows(window, reference.version, spec)
    if len(rows.positions) == 0:
        return WindowEstimate(None, "estimate: no logged probabilities in the window")
    calibrated = calibration.apply(rows.proba)
    scores = rows.proba[:, 1] if len(spec.classes) == 2 else None  # the served P(positive)
    intervals = estimate_metrics(calibrated, rows.predicted, calibration.rows, scores=scores)
    metric = estimated_metric(primary, len(spec.classes))
    metric = metric if metric in intervals else "accuracy"  # AUC: the rows expect one class
    estimated = _summary(intervals, metric, len(rows.predicted))
    note = describe_estimate(estimated, len(rows.positions), window.sample_rows)
    concept = None
    labelled = rows.actual >= 0
    if labelled.sum() >= min_labelled:
        concept, skipped = _concept(
            calibrated[labelled],
            rows.predicted[labelled],
            rows.actual[labelled],
            metric,
            calibration.rows,
            None if scores is None else scores[labelled],
        )
        note = f"{note} {skipped}" if skipped else note
    return WindowEstimate(estimated, note, concept, time.perf_counter() - t0)


@dataclass(frozen=True)
class _Rows:
    positions: np.ndarray
    proba: np.ndarray
    predicted: np.ndarray  # class index of the served answer
    actual: np.ndarray  # class index of the label, -1 when none arrived


def _usable_rows(window: WindowData, version: str, spec: FeatureSpec) -> _Rows:
    """Sampled rows of `version` with logged probabilities for every class."""
    keys = [str(c) for c in spec.classes]
    index = {k: i for i, k in enumerate(keys)}
    logged = window.probabilities
    if logged is None or window.sample_rows == 0:
        return _Rows(np.zeros(0, int), np.zeros((0, len(keys))), np.zeros(0, int), np.zeros(0, int))
    predictions = window.frame[PREDICTION].to_numpy(dtype=object)
    actuals = window.frame[ACTUAL].to_numpy(dtype=object)
    positions, proba, predicted, actual = [], [], [], []
    for i, (row, served) in enumerate(zip(logged, window.versions, strict=True)):
        if served != version or not isinstance(row, Mapping) or any(k not in row for k in keys):
            continue
        answer = index.get(str(predictions[i]))
        if answer is None:
            continue
        positions.append(i)
        proba.append([float(row[k]) for k in keys])
        predicted.append(answer)
        label = actuals[i]
        actual.append(-1 if label is None else index.get(str(label), -1))
    return _Rows(
        np.asarray(positions, dtype=int),
        np.asarray(proba, dtype=float).reshape(-1, len(keys)),
        np.asarray(predicted, dtype=int),
        np.asarray(actual, dtype=int),
    )


def _summary(intervals: Mapping[str, Interval], metric: str, rows: int) -> dict[str, Any]:
    main = intervals[metric]
    return {
        "metric": metric,
        "value": main.value,
        "low": main.low,
        "high": main.high,
        "rows": rows,
        "method": METHOD,
        **{name: [i.value, i.low, i.high] for name, i in intervals.items()},
    }


def _concept(
    calibrated: np.ndarray,
    predicted: np.ndarray,
    actual: np.ndarray,
    metric: str,
    calibration_rows: int,
    scores: np.ndarray | None,
) -> tuple[dict[str, Any] | None, str]:
    """The estimate on the labelled rows (the same interval as the window's) beside the metric
    realized on them (ROC AUC: of the served scores against the labels), or None and why the
    check cannot run."""
    skipped = f"The concept-drift check is skipped: its {len(actual):,} labelled rows "
    if metric == "roc_auc" and len(np.unique(actual)) < 2:
        return None, skipped + "hold one class only, where ROC AUC is undefined."
    intervals = estimate_metrics(calibrated, predicted, calibration_rows, scores=scores)
    if metric not in intervals:
        return None, skipped + "are all expected in one class, where ROC AUC is undefined."
    if metric == "roc_auc":
        from sklearn.metrics import roc_auc_score

        realized = float(roc_auc_score(actual == 1, scores))
    else:
        k = calibrated.shape[1]
        confusion = np.zeros((k, k))
        np.add.at(confusion, (actual, predicted), 1.0)
        realized = metric_from_confusion(confusion, metric)
    interval = intervals[metric]
    bounds = {"low": interval.low, "high": interval.high}
    return {
        "metric": metric,
        "rows": len(actual),
        "estimated": interval.value,
        **bounds,
        "realized": realized,
        "suspected": outside(bounds, realized),
    }, ""


def describe_estimate(estimated: Mapping[str, Any], rows: int, sample_rows: int) -> str:
    """The page's paragraph on the estimate."""
    return (
        f"Estimated {estimated['metric']} without labels **{estimated['value']:.4f}** (95 % "
        f"interval {estimated['low']:.4f} to {estimated['high']:.4f}) on {rows:,} of the "
        f"{sample_rows:,} sampled rows (those with logged probabilities, answered by this "
        "version): confidence-based performance estimation from the probabilities calibrated "
        "when the version was trained. It holds while the inputs drift and P(label | inputs) "
        "does not."
    )


def concept_note(concept: Mapping[str, Any]) -> str:
    """The page's paragraph on the check against the labels."""
    verdict = (
        "**outside the interval: concept drift suspected** (the model's confidence no longer "
        "matches its hit rate)"
        if concept["suspected"]
        else "inside the interval"
    )
    return (
        f"On the {concept['rows']:,} labelled rows of the sample, {concept['metric']} was "
        f"estimated {concept['estimated']:.4f} ({concept['low']:.4f} to {concept['high']:.4f}) "
        f"and realized {concept['realized']:.4f}: {verdict}."
    )
