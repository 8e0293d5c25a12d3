"""The `build-reports` flow: read a window of the prediction log → Evidently drift + quality report
against the serving version's reference → HTML + JSON + a `reports` document → index page → link
artifact, and a `lifecycle.drift.detected` event when the drift share passes the threshold (a
`lifecycle.concept-drift.suspected` one when the labels contradict the label-free estimate).

Orchestration only: the work is in `reporting` and `lifecycle`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed
from prefect.tasks import exponential_backoff

from flows.experiment import compare_live, count_pairs, decide
from lifecycle.core import events
from lifecycle.core.settings import get_settings
from lifecycle.core.times import as_utc, parse_duration, window_bounds
from lifecycle.stores.documents import ReportSummary
from lifecycle.stores.prediction_store import PredictionStore
from reporting.builder import (
    build_window_report,
    describe,
    insufficient_message,
    live_metric_name,
    write_summary,
)
from reporting.index import load_summaries, write_index
from reporting.reference import Reference, cached_reference, champion_history
from reporting.window import WindowData, read_window


# Tasks pass DataFrames around: hashing them for cache keys would cost more than the work.
@task(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=2), cache_policy=NO_CACHE)
def read_predictions(start: datetime, end: datetime) -> WindowData:
    """Count the window, read its sample and the labels that arrived (MongoDB I/O: retried)."""
    settings = get_settings()
    # "window": 20 s, not 5 (store_setup.TIMEOUTS_MS says why).
    store = PredictionStore.open(settings, "window")
    try:
        return read_window(
            store, start, end, settings.report_max_rows, settings.report_max_labelled
        )
    finally:
        store.close()


@task(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=2), cache_policy=NO_CACHE)
def load_reference(version: str) -> Reference:
    """The serving version's typed reference and spec: from the cache under MLOPS_HOME, or
    from MLflow the first time (I/O: retried)."""
    return cached_reference(version)


@task(cache_policy=NO_CACHE)
def build_report(
    window: WindowData,
    reference: Reference,
    window_label: str,
    comparison: dict[str, Any] | None = None,
) -> ReportSummary:
    """Evidently drift + summary (+ quality over labelled rows, + the live comparison); write
    the HTML page."""
    settings = get_settings()
    return build_window_report(
        window, reference, settings, settings.model_name, window_label, comparison
    )


@task(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=2), cache_policy=NO_CACHE)
def record_report(summary: ReportSummary) -> str:
    """Insert the summary into the `reports` collection (MongoDB I/O: retried)."""
    store = PredictionStore.open(get_settings(), "report")
    try:
        return str(store.insert_report(summary))
    finally:
        store.close()


@task(cache_policy=NO_CACHE)
def rebuild_index() -> Path:
    """Rewrite index.html from every summary on disk, with the champions' test metrics."""
    settings = get_settings()
    summaries = load_summaries(settings.reports_dir)
    versions = sorted({str(s.get("model_version")) for s in summaries})
    champions = champion_history(versions, settings)
    return write_index(settings.reports_dir, champions, settings.drift_threshold, summaries)


def _run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    end = params.get("end")
    stamp = end.strftime("%Y%m%dT%H%MZ") if isinstance(end, datetime) else "now"
    return f"report-{params.get('window') or get_settings().report_window}-{stamp}"


@flow(name="build-reports", flow_run_name=_run_name, timeout_seconds=1800)
def build_reports(window: str | None = None, end: datetime | None = None) -> Any:
    """Report on the window ending at `end` (default now) of length `window` (default
    MLOPS_REPORT_WINDOW). Ends Completed with "insufficient data: N rows in window" and no
    file when the window is too small."""
    settings = get_settings()
    label = window or settings.report_window
    length = parse_duration(label, "window" if window else "MLOPS_REPORT_WINDOW")
    start, stop = window_bounds(length, end or datetime.now(UTC))

    data = read_predictions(start, stop)
    _log_window(data)
    if data.rows < settings.report_min_rows:
        return _insufficient(data.rows, settings.report_min_rows)
    reference = load_reference(_report_version(data))
    # The live comparison comes first so the page shows it; the decisions need the report's
    # live metric, so they follow, and the JSON beside the page is written with them.
    metric, classes = live_metric_name(reference), reference.spec.classes
    comparison = count_pairs(compare_live(data, metric, classes), data.end)
    summary = build_report(data, reference, label, comparison)
    summary["experiment"] = decide(summary, comparison)
    write_summary(summary)
    record_report(summary)
    index = rebuild_index()
    message = describe(summary)
    get_run_logger().info("%s → %s (index %s)", message, summary["url"], index)
    _publish_link(summary, message, settings.model_name)
    if summary["drift_detected"]:
        _announce_drift(summary, settings.model_name)
    if summary.get("concept_drift_suspected"):
        _announce_concept_drift(summary, settings.model_name)
    return Completed(message=message, data=_result(summary, message, index))


def _log_window(data: WindowData) -> None:
    get_run_logger().info(
        "window %s → %s: %d predictions, sample %d (p=%.4f), %d labelled, versions %s "
        "(read %.2f s, labels %.2f s)",
        data.start.isoformat(),
        data.end.isoformat(),
        data.rows,
        data.sample_rows,
        data.sample_fraction,
        data.labelled_rows,
        data.version_counts,
        data.read_seconds,
        data.feedback_seconds,
    )


def _insufficient(rows: int, minimum: int) -> Any:
    """The Completed state of a window too small to report on (no file, no document)."""
    message = insufficient_message(rows)
    get_run_logger().info("%s (minimum MLOPS_REPORT_MIN_ROWS=%d): no report", message, minimum)
    return Completed(
        message=message, data={"status": "insufficient", "message": message, "rows": rows}
    )


def _report_version(data: WindowData) -> str:
    """The version whose reference the window is compared with: the latest one serving."""
    version = data.serving_version
    if len(data.version_counts) > 1:
        get_run_logger().info(
            "window holds versions %s; using the latest serving one, v%s",
            sorted(data.version_counts),
            version,
        )
    return str(version)


def _publish_link(summary: ReportSummary, message: str, model_name: str) -> None:
    """A link artifact to the report, under one key per model (the latest on top)."""
    create_link_artifact(
        link=summary["url"],
        link_text=(
            f"v{summary['model_version']} report, window ending "
            f"{as_utc(summary['window_end']):%Y-%m-%d %H:%M} UTC"
        ),
        key=f"drift-report-{_slug(model_name)}",
        description=message,
    )


def _announce_drift(summary: ReportSummary, model_name: str) -> None:
    """Emit `lifecycle.drift.detected` for the report (automations and alerts listen)."""
    events.emit(
        events.DRIFT_DETECTED,
        model_name,
        summary["model_version"],
        {
            "model_name": model_name,
            "model_version": summary["model_version"],
            "drift_share": summary["drift_share"],
            "threshold": summary["drift_threshold"],
            "drifted_columns": summary["drifted_columns"],
            "rows": summary["rows"],
            "window_start": as_utc(summary["window_start"]).isoformat(),
            "window_end": as_utc(summary["window_end"]).isoformat(),
            "report_url": summary["url"],
        },
    )
    get_run_logger().warning(
        "drift share %.2f > threshold %.2f: emitted %s",
        summary["drift_share"],
        summary["drift_threshold"],
        events.DRIFT_DETECTED,
    )


def _announce_concept_drift(summary: ReportSummary, model_name: str) -> None:
    """Emit `lifecycle.concept-drift.suspected`: the realized metric left the estimate's
    interval (automations may retrain on it, as on drift)."""
    concept = summary.get("concept_drift") or {}
    events.emit(
        events.CONCEPT_DRIFT_SUSPECTED,
        model_name,
        summary["model_version"],
        {
            "model_name": model_name,
            "model_version": summary["model_version"],
            **{k: concept.get(k) for k in ("metric", "estimated", "low", "high", "realized")},
            "labelled_rows": concept.get("rows"),
            "window_start": as_utc(summary["window_start"]).isoformat(),
            "window_end": as_utc(summary["window_end"]).isoformat(),
            "report_url": summary["url"],
        },
    )
    get_run_logger().warning(
        "realized %s %.4f outside the estimate %.4f to %.4f: emitted %s",
        concept.get("metric"),
        concept.get("realized"),
        concept.get("low"),
        concept.get("high"),
        events.CONCEPT_DRIFT_SUSPECTED,
    )


def _result(summary: ReportSummary, message: str, index: Path) -> dict[str, Any]:
    """What the flow run returns (the CLI prints it; tests and the bench read it)."""
    return {
        "status": "written",
        "message": message,
        "rows": summary["rows"],
        "labelled_rows": summary["labelled_rows"],
        "model_version": summary["model_version"],
        "drift_share": summary["drift_share"],
        "drift_detected": summary["drift_detected"],
        "drifted_columns": summary["drifted_columns"],
        "live_metric": summary["live_metric"],
        "primary_metric": summary["primary_metric"],
        "sampled": summary["sampled"],
        "rows_compared": summary["rows_compared"],
        "sample_fraction": summary["sample_fraction"],
        "live_rows": summary["live_rows"],
        "live_sampled": summary["live_sampled"],
        "metric_intervals": summary["metric_intervals"],
        "url": summary["url"],
        "html_path": summary["html_path"],
        "json_path": summary["json_path"],
        "index_path": str(index),
        "timings": summary["timings"],
        "experiment": summary.get("experiment"),
        "estimated": summary.get("estimated"),
        "concept_drift": summary.get("concept_drift"),
        "concept_drift_suspected": summary.get("concept_drift_suspected", False),
        "unseen_categories": summary.get("unseen_categories", {}),
    }


def _slug(name: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "model"


if __name__ == "__main__":
    build_reports(window="3h")
