"""What the exporter emits: every metric family (help text and label names), and the values the
readers hand to the collector (`Sample`, gathered into a `Reading` per read of a source)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lifecycle.core import metric_names as names

# name -> (help, label names) of every family this exporter can emit.
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    names.MODEL_LAST_TRAINED_TIMESTAMP_SECONDS: (
        "Unix time the model version behind each alias was trained (its trained_at tag).",
        ("model_name", "alias"),
    ),
    names.MODEL_ALIAS_VERSION: (
        "Registered version number each alias points at.",
        ("model_name", "alias"),
    ),
    names.MODEL_METRIC: (
        "Model quality: dataset=test from the champion's tags, dataset=live from the last report, "
        "dataset=estimated the last report's label-free estimate.",
        ("model_name", "model_version", "metric", "dataset"),
    ),
    names.MODEL_METRIC_ESTIMATE_BOUND: (
        "Bounds (bound=low|high) of the 95 % interval of the last report's label-free estimate.",
        ("model_name", "model_version", "metric", "bound"),
    ),
    names.MODEL_CONCEPT_DRIFT_SUSPECTED: (
        "1 when the last report's labels fell outside its label-free estimate, else 0.",
        ("model_name",),
    ),
    names.DATA_DRIFT_SHARE: (
        "Share of drifted feature columns in the latest report.",
        ("model_name",),
    ),
    names.REPORT_LAST_TIMESTAMP_SECONDS: (
        "Unix time the latest report was created.",
        ("model_name",),
    ),
    names.MODEL_METRIC_THRESHOLD: (
        "Alert bounds of the primary metric (MLOPS_MIN_METRIC / MLOPS_MAX_METRIC).",
        ("model_name", "metric", "bound"),
    ),
    names.MODEL_STALE_AFTER_SECONDS: (
        "Champion age that raises ModelStale (MLOPS_STALE_AFTER_HOURS).",
        ("model_name",),
    ),
    names.DATA_DRIFT_THRESHOLD: (
        "Drift share that raises DataDriftDetected (MLOPS_DRIFT_THRESHOLD).",
        ("model_name",),
    ),
    names.REPORT_WINDOW_SECONDS: (
        "Window each report covers (MLOPS_REPORT_WINDOW); ReportsStale fires after two.",
        ("model_name",),
    ),
    names.EXPORTER_SOURCE_UP: (
        "1 when the last read of the source succeeded within the scrape budget, else 0.",
        ("source",),
    ),
    names.EXPORTER_SOURCE_READ_SECONDS: (
        "How long the last completed read of the source took.",
        ("source",),
    ),
    names.EXPORTER_SOURCE_LAST_SUCCESS_TIMESTAMP_SECONDS: (
        "Unix time of the last successful read of the source.",
        ("source",),
    ),
}


@dataclass(frozen=True)
class Sample:
    """One value of one metric family."""

    name: str
    labels: dict[str, str]
    value: float


@dataclass
class Reading:
    """The outcome of one read of a source."""

    ok: bool
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None
    duration: float = 0.0
    finished_at: float = 0.0  # time.time()
    context: dict[str, Any] = field(default_factory=dict)  # facts other parts reuse (task)
