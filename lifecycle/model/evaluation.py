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
