"""One report window read from the prediction log, at a cost set by the sample, not the window.

- The window's true row count comes from a count on the index.
- Drift reads only `sample_key < p`, with p chosen from that count so about
  `MLOPS_REPORT_MAX_ROWS` rows come back (uniform, and the same rows on every rerun: the keys
  were drawn when the rows were logged). Rows logged before `sample_key` existed are read as
  before and kept by the hash of their id, at the same rate p.
- The live metrics join every label of the window, starting from `feedback` (labels are far
  fewer than predictions); above `MLOPS_REPORT_MAX_LABELLED` labels they use the labelled rows
  of the sample instead, and say so.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from lifecycle.core.times import as_utc
from lifecycle.stores.documents import SAMPLE_KEY
from lifecycle.stores.prediction_store import PredictionStore

PREDICTION = "prediction"
ACTUAL = "actual"
# Only what a report needs crosses the wire: no latencies or request ids. The shadow's score
# (absent unless MLOPS_SHADOW_ALIAS was set) is the live comparison's input; the probabilities
# are the label-free estimate's (reporting.estimate); `unseen` (MLOPS_UNSEEN_CATEGORY=missing)
# names the categories the model never saw (reporting.unseen).
PROJECTION = {
    "_id": 1,
    "ts": 1,
    "model_version": 1,
    "features": 1,
    "prediction": 1,
    "probabilities": 1,
    "shadow": 1,
    "unseen": 1,
}
# The labelled rows joined from `feedback` (the live pairs): what the metrics and the
# comparison of versions need.
PAIR_PROJECTION = {"model_version": 1, "prediction": 1, "probabilities": 1, "shadow": 1}
KEYED_PROJECTION = {**PROJECTION, SAMPLE_KEY: 1}
UNKEYED = {SAMPLE_KEY: {"$exists": False}}
# Rows per sample query: nx-27017 builds a query's whole result before it answers, and a query
# that blocks it past the client's heartbeat timeout cancels the read; 5,000 rows take ~1 s.
CHUNK_ROWS = 5000


@dataclass(frozen=True)
class LivePairs:
    """The labelled rows the live metrics and the live comparison are computed on: id, actual,
    the answer, the version that answered it, the shadow's score (None without one) and the
    answer's class probabilities ({str(class): probability}, None when not logged)."""

    ids: np.ndarray
    actual: np.ndarray
    predicted: np.ndarray
    versions: np.ndarray
    shadows: np.ndarray
    sampled: bool  # True: the labelled rows of the sample, not every label of the window
    probabilities: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.actual)


@dataclass
class WindowData:
    """A window's sample. `frame` holds the features, `prediction` and `actual` (None when no
    label has arrived) of the sampled rows; `ids`, `ts`, `versions` and `shadows` are aligned
    with it, and so are `probabilities` (each row's logged class probabilities, or None) and
    `unseen` (each row's {feature: value the model never saw}, or None).
    `total_rows` is the window's true row count and `sample_fraction` the p it was read with."""

    start: datetime
    end: datetime
    frame: pd.DataFrame
    ids: np.ndarray
    ts: np.ndarray
    versions: np.ndarray
    shadows: np.ndarray
    probabilities: np.ndarray | None = None
    unseen: np.ndarray | None = None
    total_rows: int = 0
    sample_fraction: float = 1.0
    unkeyed_rows: int = 0
    live: LivePairs | None = None
    read_seconds: float = 0.0
    feedback_seconds: float = 0.0
    version_counts: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.total_rows

    @property
    def sample_rows(self) -> int:
        return len(self.frame)

    @property
    def sampled(self) -> bool:
        return self.sample_rows < self.total_rows

    @property
    def labelled_mask(self) -> np.ndarray:
        return self.frame[ACTUAL].notna().to_numpy() if len(self.frame) else np.zeros(0, bool)

    @property
    def labelled_rows(self) -> int:
        """Labelled rows of the window: counted by the join, or estimated from the sample."""
        if self.live is not None and not self.live.sampled:
            return len(self.live)
        return round(int(self.labelled_mask.sum()) / self.sample_fraction)

    @property
    def serving_version(self) -> str | None:
        """The version that answered the newest sampled prediction (what serves now)."""
        if self.sample_rows == 0:
            return None
        return str(self.versions[int(np.argmax(self.ts))])


def sample_fraction(rows: int, cap: int) -> float:
    """p such that `sample_key < p` keeps about `cap` of `rows` rows (1.0: read them all)."""
    return 1.0 if rows <= cap else cap / rows


def read_window(
    store: PredictionStore,
    start: datetime,
    end: datetime,
    max_rows: int = 50_000,
    max_labelled: int = 100_000,
) -> WindowData:
    """The window's true count, its sample (projected, built column-wise), the sample's labels,
    and the live pairs (every label of the window, or the sample's)."""
    t0 = time.perf_counter()
    total = store.count_window(start, end)
    p = sample_fraction(total, max_rows)
    docs, unkeyed = _read_sample(store, start, end, total, max_rows)
    window = _window_from(docs, start, end, total, p, unkeyed)
    window.version_counts = _version_counts(store, window)
    window.read_seconds = time.perf_counter() - t0

    t1 = time.perf_counter()
    labels = store.feedback_for(window.ids.tolist()) if window.sample_rows else {}
    window.frame[ACTUAL] = pd.Series([labels.get(i) for i in window.ids], dtype=object)
    window.live = _live_pairs(store, window, max_labelled)
    window.feedback_seconds = time.perf_counter() - t1
    return window


def _read_sample(
    store: PredictionStore, start: datetime, end: datetime, total: int, cap: int
) -> tuple[list[dict[str, Any]], int]:
    """The documents of the sample (exactly `cap` when the window holds more), and how many
    rows of the window have no sample_key."""
    p = sample_fraction(total, cap)
    old: list[dict[str, Any]] = []
    if store.has_unkeyed():  # answered by the sample_key index alone
        # Rows logged before sample_key: today's path (read them, keep p of them by id hash).
        old = list(store.iter_window(start, end, PROJECTION, extra=UNKEYED))
        keep = sample_positions(
            np.asarray([d["_id"] for d in old], dtype=object), round(len(old) * p)
        )
        kept = old if keep is None else [old[i] for i in keep]
    else:
        kept = []
    if p >= 1.0:
        return kept + _read_keys(store, start, end, 1.0, total), len(old)
    # A little above p (3 standard deviations), then the `cap` smallest keys: those are a
    # uniform sample of exactly `cap` rows, the same on every rerun.
    want = cap - len(kept)
    high = min(1.0, p * (1 + 3 / np.sqrt(max(want, 1))))
    keyed = _read_keys(store, start, end, high, round(high * (total - len(old))))
    keyed.sort(key=lambda d: d[SAMPLE_KEY])
    return kept + keyed[:want], len(old)


def _read_keys(
    store: PredictionStore, start: datetime, end: datetime, high: float, expected: int
) -> list[dict[str, Any]]:
    """The window's rows with sample_key < high, in key ranges of about CHUNK_ROWS rows."""
    edges = np.linspace(0.0, high, max(1, int(np.ceil(expected / CHUNK_ROWS))) + 1)
    docs: list[dict[str, Any]] = []
    for low, top in itertools.pairwise(edges.tolist()):  # keys are in [0, 1): random()
        docs += store.iter_sample(start, end, low, top, KEYED_PROJECTION)
    return docs


def _window_from(
    docs: list[dict[str, Any]], start: datetime, end: datetime, total: int, p: float, unkeyed: int
) -> WindowData:
    """The sample as columns: one list per feature, categoricals (strings) as categoricals."""
    features = [d.get("features") or {} for d in docs]
    names = list(dict.fromkeys(k for f in features for k in f))
    columns: dict[str, Any] = {}
    for name in names:
        values = [f.get(name) for f in features]
        is_text = any(isinstance(v, str) for v in values)
        columns[name] = pd.Categorical(values) if is_text else pd.Series(values, dtype=object)
    frame = pd.DataFrame(columns, index=pd.RangeIndex(len(docs)))
    frame[PREDICTION] = pd.Series([d.get("prediction") for d in docs], dtype=object)
    frame[ACTUAL] = pd.Series([None] * len(docs), dtype=object)
    return WindowData(
        start=start,
        end=end,
        frame=frame,
        ids=np.asarray([d["_id"] for d in docs], dtype=object),
        ts=np.asarray([as_utc(d["ts"]) for d in docs], dtype=object),
        versions=np.asarray([str(d.get("model_version")) for d in docs], dtype=object),
        shadows=np.asarray([d.get("shadow") for d in docs], dtype=object),
        probabilities=np.asarray([d.get("probabilities") for d in docs], dtype=object),
        unseen=np.asarray([d.get("unseen") for d in docs], dtype=object),
        total_rows=total,
        sample_fraction=p,
        unkeyed_rows=unkeyed,
    )


def _version_counts(store: PredictionStore, window: WindowData) -> dict[str, int]:
    """Rows per model version. Whole window: counted from it. Sampled: one version seen →
    all rows (a version unseen in the sample has below ~1/p rows); several → each counted
    exactly on the (model_version, ts) index."""
    seen = Counter(window.versions.tolist())
    if not window.sampled:
        return dict(seen)
    if len(seen) == 1:
        return {next(iter(seen)): window.total_rows}
    return store.versions_in(window.start, window.end, sorted(seen))


def _live_pairs(store: PredictionStore, window: WindowData, max_labelled: int) -> LivePairs:
    """Every label of the window joined to its prediction, starting from `feedback`; the
    sample's labelled rows when more than `max_labelled` labels arrived since the start."""
    if not window.sampled:
        return _sample_pairs(window, sampled=False)
    if store.count_feedback_since(window.start) > max_labelled:
        return _sample_pairs(window, sampled=True)
    labels = dict(store.labels_since(window.start))
    docs = list(store.predictions_for(list(labels), window.start, window.end, PAIR_PROJECTION))

    def column(values: Any) -> np.ndarray:
        return np.asarray(list(values), dtype=object)

    return LivePairs(
        ids=column(d["_id"] for d in docs),
        actual=column(labels[d["_id"]] for d in docs),
        predicted=column(d.get("prediction") for d in docs),
        versions=column(str(d.get("model_version")) for d in docs),
        shadows=column(d.get("shadow") for d in docs),
        sampled=False,
        probabilities=column(d.get("probabilities") for d in docs),
    )


def _sample_pairs(window: WindowData, sampled: bool) -> LivePairs:
    mask = window.labelled_mask
    rows = window.frame[mask]
    return LivePairs(
        ids=window.ids[mask],
        actual=rows[ACTUAL].to_numpy(dtype=object),
        predicted=rows[PREDICTION].to_numpy(dtype=object),
        versions=window.versions[mask],
        shadows=window.shadows[mask],
        sampled=sampled,
        probabilities=None if window.probabilities is None else window.probabilities[mask],
    )


def sample_positions(ids: np.ndarray, cap: int) -> np.ndarray | None:
    """Positions of a deterministic sample of at most `cap` rows, or None when all rows fit.

    Rows are kept by the hash of their prediction id, so the same window always gives the same
    sample whatever order the server returns it in, and a row's fate never depends on its
    neighbours.
    """
    if len(ids) <= cap:
        return None
    if cap <= 0:
        return np.zeros(0, dtype=int)
    keys = pd.util.hash_pandas_object(pd.Series(ids, dtype=object), index=False).to_numpy()
    keep = np.argpartition(keys, cap - 1)[:cap]
    return np.sort(keep)
