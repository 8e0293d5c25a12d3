"""The validated training table every source returns: a frame with its target and task.

The sources (sources.py) and the production rows (feedback.py) both end here, so the checks a
table must pass to be trained on are the same whichever way it came in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd

from lifecycle.core.errors import DataSourceError
from lifecycle.core.settings import Task

MAX_CLASSES = 50  # more distinct integer labels than this means the target is a quantity


@dataclass(frozen=True)
class Dataset:
    """A training table with its target column and task."""

    frame: pd.DataFrame
    target: str
    task: Task
    source: str
    # Prediction ids of the rows that came from the production log (lifecycle.data.feedback),
    # recorded with the training run so a backtest never scores a version on its own training.
    prediction_ids: tuple[str, ...] = ()

    @property
    def features(self) -> pd.DataFrame:
        return self.frame.drop(columns=[self.target])

    @property
    def labels(self) -> pd.Series:
        return self.frame[self.target]

    def fingerprint(self) -> dict[str, object]:
        """A content hash plus shape, logged with every training run."""
        digest = hashlib.sha256(
            pd.util.hash_pandas_object(self.frame, index=False).values.tobytes()
        ).hexdigest()[:16]
        return {"hash": digest, "rows": len(self.frame), "columns": len(self.frame.columns)}


def dataset_from_frame(
    frame: pd.DataFrame, source: str, target: str | None, task: Task | None
) -> Dataset:
    """Check a table is fit to train on and resolve its task."""
    if target is None:
        raise DataSourceError(source, "no target column given: set MLOPS_TARGET")
    if frame.empty or len(frame.columns) == 0:
        raise DataSourceError(source, "empty table (no rows)")
    if target not in frame.columns:
        raise DataSourceError(
            source, f"missing target column {target!r} (columns: {', '.join(map(str, frame))})"
        )
    frame = frame[frame[target].notna()].reset_index(drop=True)
    if frame.empty:
        raise DataSourceError(source, f"empty table: every {target!r} value is null")
    if len(frame.columns) < 2:
        raise DataSourceError(source, "no feature columns besides the target")
    task = task or infer_task(frame[target])
    if task != "regression":
        n_classes = frame[target].nunique()
        if n_classes < 2:
            raise DataSourceError(
                source, f"target {target!r} has one class ({frame[target].iloc[0]!r}); need two"
            )
        if task == "binary" and n_classes > 2:
            raise DataSourceError(source, f"task binary but target has {n_classes} classes")
    return Dataset(frame, target, task, source)


def infer_task(labels: pd.Series) -> Task:
    """binary / multiclass for labels that look like classes, regression otherwise."""
    distinct = labels.nunique()
    if pd.api.types.is_float_dtype(labels) and not (labels.dropna() % 1 == 0).all():
        return "regression"
    numeric = pd.api.types.is_numeric_dtype(labels) and not pd.api.types.is_bool_dtype(labels)
    if numeric and distinct > MAX_CLASSES:
        return "regression"
    return "binary" if distinct <= 2 else "multiclass"
