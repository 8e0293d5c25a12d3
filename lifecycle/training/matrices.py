"""What XGBoost is given for a feature spec: its fixed parameters per task, the encoded labels
and the DMatrix. The search's trials and the refit of the best trial build them the same way."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from lifecycle.core.settings import Task
from lifecycle.model.predictor import FeatureSpec


def objective_params(
    task: Task, n_classes: int, seed: int, pos_weight: float | None = None
) -> dict[str, Any]:
    """XGBoost's fixed parameters for a task: objective, its eval metric, histogram trees;
    `pos_weight` (binary): XGBoost's scale_pos_weight (`positive_weight`)."""
    base = {"tree_method": "hist", "seed": seed, "max_cat_to_onehot": 1}
    if task == "regression":
        return {**base, "objective": "reg:squarederror", "eval_metric": "rmse"}
    if task == "binary":
        weight = {"scale_pos_weight": pos_weight} if pos_weight else {}
        return {**base, "objective": "binary:logistic", "eval_metric": "logloss", **weight}
    return {
        **base,
        "objective": "multi:softprob",
        "eval_metric": "mlogloss",
        "num_class": n_classes,
    }


def positive_weight(spec: FeatureSpec, frame: pd.DataFrame, class_weight: str) -> float | None:
    """With MLOPS_CLASS_WEIGHT=balanced, a binary target's negatives per positive in `frame`
    (XGBoost's advice for imbalanced classes): where 14 % churn, an unweighted model on a few
    hundred rows rarely puts a churner above 0.5, and predicts nobody churns. None otherwise."""
    if class_weight != "balanced" or spec.task != "binary":
        return None
    positives = int(np.sum(labels(spec, frame) == 1))
    return (len(frame) - positives) / positives if positives else None


def labels(spec: FeatureSpec, frame: pd.DataFrame) -> np.ndarray:
    """The target as XGBoost wants it: float values, or class indexes in the spec's order."""
    y = frame[spec.target]
    if spec.task == "regression":
        return y.to_numpy(dtype=np.float32)
    index = {c: i for i, c in enumerate(spec.classes)}
    return np.array(
        [index[v.item() if isinstance(v, np.generic) else v] for v in y], dtype=np.int32
    )


def dmatrix(spec: FeatureSpec, frame: pd.DataFrame, with_label: bool = True) -> Any:
    """The encoded frame as an XGBoost DMatrix with native categorical columns."""
    return xgb.DMatrix(
        spec.encode_frame(frame),
        label=labels(spec, frame) if with_label else None,
        feature_names=spec.names,
        feature_types=[f.xgb_type for f in spec.features],
        enable_categorical=True,
    )
