"""The shapes of what the loop stores, defined once: every writer builds them and every reader
reads them through these types (DESIGN.md, "MongoDB documents"). The store (`store.py`) keeps
them in MongoDB; report summaries are also written beside their HTML as JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict


class PredictionDocument(TypedDict):
    """One row of the `predictions` collection (insert-only; `_id` is the prediction id)."""

    _id: str
    ts: datetime
    model_name: str
    model_version: str
    features: dict[str, Any]
    prediction: Any
    probabilities: dict[str, float] | None  # str(class) → probability; None for regression
    latency_ms: float | None
    request_id: str | None
    endpoint: str


class FeedbackDocument(TypedDict):
    """One label in the `feedback` collection (upserted by prediction id, so idempotent)."""

    _id: str
    actual: Any
    ts: datetime


class ReportTimings(TypedDict):
    read_seconds: float
    feedback_seconds: float
    evidently_seconds: float


class ColumnDrift(TypedDict):
    """Evidently's drift test on one column: score, method, threshold and verdict."""

    score: float | None
    method: str | None
    threshold: float | None
    drifted: bool


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
    labelled_rows: int
    versions_in_window: dict[str, int]
    drift_share: float
    drift_threshold: float
    drift_detected: bool
    drifted_columns: list[str]
    column_drift: dict[str, ColumnDrift]  # per feature column
    prediction_drift: ColumnDrift | None  # the same test on the prediction column
    metrics: dict[str, float]  # live metrics on the labelled rows
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
