"""The shapes of what the loop stores, defined once: every writer builds them and every reader
reads them through these types; a `predictions` document is
built by `prediction_document` only. The store (`prediction_store.py`) keeps them in MongoDB;
report summaries are also written beside their HTML as JSON.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any, NotRequired, TypedDict

# The collections, in the one database MLOPS_MONGO_DB.
PREDICTIONS = "predictions"
FEEDBACK = "feedback"
REPORTS = "reports"
BACKTESTS = "backtests"
STREAM_CHECKPOINTS = "stream_checkpoints"
EXPERIMENTS = "experiments"  # one document per challenger's live experiment
# On a server that cannot isolate databases: which database owns it (one document).
CLAIM = "lifecycle_server"
# The `predictions` field a report samples a window by.
SAMPLE_KEY = "sample_key"


class ShadowScore(TypedDict):
    """The shadow model's answer for the same row (MLOPS_SHADOW_ALIAS), never sent to clients."""

    model_version: str
    prediction: Any
    probabilities: dict[str, float] | None


class PredictionDocument(TypedDict):
    """One row of the `predictions` collection (insert-only; `_id` is the prediction id)."""

    _id: str
    ts: datetime
    model_name: str
    model_version: str  # the version that answered (the challenger's for a canary request)
    features: dict[str, Any]
    prediction: Any
    probabilities: dict[str, float] | None  # str(class) → probability; None for regression
    latency_ms: float | None
    request_id: str | None
    endpoint: str
    # Uniform in [0, 1), drawn when logged; a report samples a window with `sample_key < p`.
    # Documents logged before it existed have none.
    sample_key: NotRequired[float]
    # With a shadow (MLOPS_SHADOW_ALIAS): the other model's answer on the same row.
    shadow: NotRequired[ShadowScore]
    # Under MLOPS_UNSEEN_CATEGORY=missing: the features whose category the model never saw,
    # {feature: value as sent}; they were scored as missing (`features` keeps the value).
    unseen: NotRequired[dict[str, Any]]


class FeedbackDocument(TypedDict):
    """One label in the `feedback` collection (upserted by prediction id, so idempotent)."""

    _id: str
    actual: Any
    ts: datetime


class ReportTimings(TypedDict):
    read_seconds: float
    feedback_seconds: float
    evidently_seconds: float
    estimate_seconds: NotRequired[float]  # the label-free estimate (reporting.estimate)


class ColumnDrift(TypedDict):
    """Evidently's drift test on one column: score, method, threshold and verdict."""

    score: float | None
    method: str | None
    threshold: float | None
    drifted: bool


class UnseenCategories(TypedDict):
    """One feature's categories the model never saw, in a report's window (reporting.unseen):
    counted on the rows the report read (the sample, when the window was sampled)."""

    rows: int  # rows whose value of this feature was unseen
    # [value, rows] of the most frequent values (str, at most 64 characters), most frequent
    # first: pairs, not a mapping, because a client's value cannot be a field name ('$x', 'a.b').
    values: list[list[Any]]
    other: int  # rows whose value is not among `values`
    estimated_rows: NotRequired[int]  # sampled windows only: `rows` / p, the window's estimate


class ReportSummary(TypedDict):
    """One report: the `reports` document, the JSON beside the HTML, and what the index page,
    the exporter, `mlops status` and the flow's artifact and event read."""

    model_name: str
    model_version: str
    window_start: datetime
    window_end: datetime
    window: str  # the window's length as typed ("3h")
    rows: int
    rows_compared: int  # rows in the drift comparison (all, or the deterministic sample)
    sampled: bool
    sample_fraction: float  # p of the read `sample_key < p` (1.0: the whole window was read)
    unkeyed_rows: int  # rows without sample_key (logged before it), sampled by id hash instead
    labelled_rows: int
    versions_in_window: dict[str, int]
    drift_share: float
    drift_threshold: float
    drift_detected: bool
    drifted_columns: list[str]
    column_drift: dict[str, ColumnDrift]  # per feature column
    prediction_drift: ColumnDrift | None  # the same test on the prediction column
    metrics: dict[str, float]  # live metrics on the labelled rows
    metric_intervals: dict[str, list[float]]  # 95 % bootstrap interval of each live metric
    live_rows: int  # labelled rows the live metrics were computed on
    live_sampled: bool  # True: on the labelled rows of the sample (too many labels to join)
    primary_metric: str
    live_metric: float | None
    test_metric: float | None
    quality_section: bool
    evidently_metrics: dict[str, Any]
    html_path: str
    json_path: str
    relative_html: str
    url: str
    created_at: datetime
    timings: ReportTimings
    # The live comparison (flows.experiment): {champion, metric, live_versions: {version:
    # {version, rows, value, low, high}}, paired: PairedTest | None, decisions: [Decision]}
    experiment: NotRequired[dict[str, Any]]
    # The label-free estimate (classifiers whose version stored a calibration), else None:
    # {metric, value, low, high, rows, method, accuracy: [value, low, high], f1: [...]}.
    estimated: NotRequired[dict[str, Any] | None]
    estimate_note: NotRequired[str]  # why there is none ("estimate: classification only")
    # The estimate on the window's labelled rows against the metric realized on them:
    # {metric, rows, estimated, low, high, realized, suspected}; None below the minimum.
    concept_drift: NotRequired[dict[str, Any] | None]
    concept_drift_suspected: NotRequired[bool]  # the realized metric fell outside
    # Under MLOPS_UNSEEN_CATEGORY=missing: {feature: its unseen values}; {} when none arrived.
    unseen_categories: NotRequired[dict[str, UnseenCategories]]


class BacktestDocument(TypedDict):
    """One replay of a version on the prediction log (`backtests`, lifecycle.decisions.backtest)."""

    model_name: str
    version: str  # the version replayed (the challenger)
    against: str | None  # the version compared with on the same rows (None: what served)
    window_start: datetime
    window_end: datetime
    window: str
    rows: int  # predictions in the window
    scored: int  # rows re-scored (the sample, less excluded ones)
    sampled: bool
    sample_fraction: float
    excluded_training_rows: int
    disagreement: float  # share of rows (classification) or mean |difference| (regression)
    paired: dict[str, Any] | None  # labelled rows: metric of each side, wins/losses/ties
    estimated: dict[str, Any]  # version → label-free estimate on the unlabelled rows
    created_at: datetime
    seconds: float


class StreamCheckpointDocument(TypedDict):
    """One shard's position in `stream_checkpoints` (`_id` = "stream/shard"): the last sequence
    number whose outputs Kinesis accepted, written only after that (upserted)."""

    _id: str
    stream: str
    shard_id: str
    sequence_number: str | None
    ended: bool  # the shard was closed by resharding and read to its end
    updated_at: datetime


def prediction_document(
    prediction_id: str,
    ts: datetime,
    model_name: str,
    model_version: str,
    features: dict[str, Any],
    prediction: Any,
    probabilities: dict[str, float] | None = None,
    latency_ms: float | None = None,
    request_id: str | None = None,
    endpoint: str = "/predict",
    shadow: ShadowScore | None = None,
    unseen: dict[str, Any] | None = None,
) -> PredictionDocument:
    """One `predictions` document, in the shape every reader of the log expects.

    `sample_key` is drawn once, here, when the row is logged: a report samples a window with
    the indexed filter `sample_key < p` instead of reading the whole window (README, Report).
    `random.random()` costs well under a microsecond, and this runs in the shipper, off the
    request path.
    """
    document = PredictionDocument(
        _id=prediction_id,
        ts=ts,
        model_name=model_name,
        model_version=model_version,
        features=features,
        prediction=prediction,
        probabilities=probabilities,
        latency_ms=latency_ms,
        request_id=request_id,
        endpoint=endpoint,
        sample_key=random.random(),
    )
    if shadow is not None:  # only with MLOPS_SHADOW_ALIAS: other documents stay as they were
        document["shadow"] = shadow
    if unseen:  # only rows scored with an unseen category
        document["unseen"] = unseen
    return document
