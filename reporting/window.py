"""One report window read from the prediction log: predictions joined with the labels that have
arrived so far, sampled deterministically when the window is larger than the cap.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from lifecycle.store import PredictionStore
from lifecycle.times import as_utc

PREDICTION = "prediction"
ACTUAL = "actual"
# Only what a report needs crosses the wire: no probabilities, latencies or request ids.
PROJECTION = {"_id": 1, "ts": 1, "model_version": 1, "features": 1, "prediction": 1}


@dataclass
class WindowData:
    """Predictions of one window. `frame` holds the features, `prediction` and `actual` (None
    when no label has arrived); `ids`, `ts` and `versions` are aligned with it."""

    start: datetime
    end: datetime
    frame: pd.DataFrame
    ids: np.ndarray
    ts: np.ndarray
    versions: np.ndarray
    read_seconds: float = 0.0
    feedback_seconds: float = 0.0
    version_counts: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def labelled_mask(self) -> np.ndarray:
        return self.frame[ACTUAL].notna().to_numpy()

    @property
    def labelled_rows(self) -> int:
        return int(self.labelled_mask.sum())

    @property
    def serving_version(self) -> str | None:
        """The version that answered the newest prediction of the window (what serves now)."""
        if self.rows == 0:
            return None
        return str(self.versions[int(np.argmax(self.ts))])


def read_window(
    store: PredictionStore,
    start: datetime,
    end: datetime,
    batch_size: int = 5000,
) -> WindowData:
    """Predictions with start <= ts < end (ts-indexed range query, projected, in batches),
    joined with every label that has arrived up to now."""
    t0 = time.perf_counter()
    ids: list[str] = []
    ts: list[datetime] = []
    versions: list[str] = []
    features: list[dict[str, Any]] = []
    predictions: list[Any] = []
    for doc in store.iter_window(start, end, PROJECTION, batch_size):
        ids.append(doc["_id"])
        ts.append(as_utc(doc["ts"]))
        versions.append(str(doc.get("model_version")))
        features.append(doc.get("features") or {})
        predictions.append(doc.get("prediction"))
    read_seconds = time.perf_counter() - t0

    t1 = time.perf_counter()
    labels = store.feedback_for(ids, batch=batch_size) if ids else {}
    feedback_seconds = time.perf_counter() - t1

    frame = pd.DataFrame.from_records(features) if features else pd.DataFrame()
    frame[PREDICTION] = pd.Series(predictions, dtype=object)
    frame[ACTUAL] = pd.Series([labels.get(i) for i in ids], dtype=object)
    return WindowData(
        start=start,
        end=end,
        frame=frame,
        ids=np.asarray(ids, dtype=object),
        ts=np.asarray(ts, dtype=object),
        versions=np.asarray(versions, dtype=object),
        read_seconds=read_seconds,
        feedback_seconds=feedback_seconds,
        version_counts=dict(Counter(versions)),
    )


def sample_positions(ids: np.ndarray, cap: int) -> np.ndarray | None:
    """Positions of a deterministic sample of at most `cap` rows, or None when all rows fit.

    Rows are kept by the hash of their prediction id, so the same window always gives the same
    sample whatever order the server returns it in, and a row's fate never depends on its
    neighbours.
    """
    if len(ids) <= cap:
        return None
    keys = pd.util.hash_pandas_object(pd.Series(ids, dtype=object), index=False).to_numpy()
    keep = np.argpartition(keys, cap - 1)[:cap]
    return np.sort(keep)
