"""Metrics per task: classification accuracy, F1, ROC AUC, log loss; regression RMSE, MAE, R²."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lifecycle.core.settings import LOWER_IS_BETTER, Task

if TYPE_CHECKING:
    import pandas as pd

    from lifecycle.model.predictor import Predictor

CLASSIFICATION_METRICS = ("accuracy", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")


def metric_names(task: Task) -> tuple[str, ...]:
    return REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS


def compute_metrics(
    task: Task,
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    proba: np.ndarray | None = None,
    classes: Sequence[Any] = (),
) -> dict[str, float]:
    """All metrics of the task. For multiclass, F1 and ROC AUC are macro averages."""
    # Imported here, not at the top: the registry, `mlops status`, the exporter and the gate
    # import this module for the metric names alone, and scikit-learn costs ~2 s of CPU to
    # import in each of those processes.
    from sklearn import metrics as skm

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if task == "regression":
        return {
            "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
            "mae": float(skm.mean_absolute_error(y_true, y_pred)),
            "r2": float(skm.r2_score(y_true, y_pred)),
        }
    out = {"accuracy": float(skm.accuracy_score(y_true, y_pred))}
    if task == "binary":
        out["f1"] = float(skm.f1_score(y_true, y_pred, pos_label=classes[1], zero_division=0))
    else:
        out["f1"] = float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))
    if proba is not None and len(np.unique(y_true)) > 1:
        labels = list(classes)
        if task == "binary":
            out["roc_auc"] = float(skm.roc_auc_score(y_true == classes[1], proba[:, 1]))
        else:
            present = np.isin(labels, np.unique(y_true))
            if present.all():
                out["roc_auc"] = float(
                    skm.roc_auc_score(
                        y_true, proba, multi_class="ovr", average="macro", labels=labels
                    )
                )
        out["log_loss"] = float(skm.log_loss(y_true, np.clip(proba, 1e-15, 1), labels=labels))
    return out


def roc_auc_interval(
    positive: Sequence[bool], scores: Sequence[float]
) -> tuple[float, float, float]:
    """ROC AUC of `scores` for the rows where `positive` is true, with its 95 % interval from
    DeLong's variance (DeLong, DeLong & Clarke-Pearson, Biometrics 44, 1988), computed from
    midranks in O(n log n) as in Sun & Xu (IEEE Signal Processing Letters 21, 2014).

    Each positive's placement V10 is the share of negatives it outscores (ties count one half),
    each negative's V01 the share of positives that outscore it; AUC is their mean and its
    variance var(V10)/m + var(V01)/n. A closed form, where a bootstrap of sklearn's AUC would
    cost seconds per report. The interval is clipped to [0, 1]. Rows whose score is NaN (no
    probability logged) are left out; NaNs for a single class."""
    from scipy.stats import rankdata

    s = np.asarray(scores, dtype=float)
    has = np.isfinite(s)
    y, s = np.asarray(positive, dtype=bool)[has], s[has]
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        return float("nan"), float("nan"), float("nan")
    overall = rankdata(s)  # midranks: a tie counts one half each way
    v10 = (overall[y] - rankdata(s[y])) / n
    v01 = 1.0 - (overall[~y] - rankdata(s[~y])) / m
    auc = float(v10.mean())
    variance = (v10.var(ddof=1) if m > 1 else 0.0) / m + (v01.var(ddof=1) if n > 1 else 0.0) / n
    spread = 1.959964 * float(np.sqrt(variance))
    return auc, max(0.0, auc - spread), min(1.0, auc + spread)


def positive_scores(probabilities: Sequence[Any], positive_key: str) -> np.ndarray:
    """The positive class's probability of each logged row ({str(class): probability} or None),
    NaN where a row has none."""
    return np.asarray(
        [
            float(row[positive_key]) if isinstance(row, dict) and positive_key in row else np.nan
            for row in probabilities
        ],
        dtype=float,
    )


def loss(metric: str, value: float) -> float:
    """What hyperopt minimises for `metric`."""
    return value if metric in LOWER_IS_BETTER else -value


def is_better_or_equal(metric: str, candidate: float, reference: float, tolerance: float) -> bool:
    """True when `candidate` is no worse than `reference` beyond `tolerance`."""
    if metric in LOWER_IS_BETTER:
        return candidate <= reference + tolerance
    return candidate >= reference - tolerance


def evaluate(predictor: Predictor, frame: pd.DataFrame) -> dict[str, float]:
    labels, proba = predictor.predict_frame(frame)
    spec = predictor.spec
    return compute_metrics(spec.task, frame[spec.target].to_numpy(), labels, proba, spec.classes)
