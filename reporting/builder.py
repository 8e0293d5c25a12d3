"""One report from one window: pick the sample, build the Evidently page, write
`<reports_dir>/<model_version>/<window-end>.html|json`, and shape the summary the `reports`
collection keeps."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lifecycle.core.settings import Settings
from lifecycle.stores.documents import ReportSummary, ReportTimings
from reporting.comparison import page_notes
from reporting.drift import DriftContent, build_drift_report
from reporting.estimate import WindowEstimate, concept_note, estimate_window
from reporting.files import jsonable, write_atomic
from reporting.live import LiveQuality, live_metrics_with_intervals
from reporting.notes import about_notes
from reporting.reference import Reference
from reporting.unseen import count_unseen, unseen_note
from reporting.window import ACTUAL, WindowData, sample_positions

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class ReportFiles:
    """Where a report lives on disk and under the nginx base URL."""

    html: Path
    json: Path
    relative_html: str

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/{self.relative_html}"


def insufficient_message(rows: int) -> str:
    """The message of a run that writes no report."""
    return f"insufficient data: {rows} rows in window"


def report_files(reports_dir: Path, version: str, end: datetime) -> ReportFiles:
    """`<reports_dir>/<version>/<window-end>.html|json` (compact UTC stamp: safe in URLs)."""
    stamp = end.astimezone(UTC).strftime(STAMP_FORMAT)
    folder = Path(reports_dir) / _safe_segment(version)
    return ReportFiles(
        folder / f"{stamp}.html", folder / f"{stamp}.json", f"{folder.name}/{stamp}.html"
    )


def live_metric_name(reference: Reference) -> str:
    """The version's primary metric when labels and logged answers give it: ROC AUC for a binary
    model ranked by it (from the probabilities logged with each answer), else accuracy for
    classifiers; RMSE, MAE or R² for regression."""
    if reference.spec.is_classifier:
        binary_auc = reference.spec.task == "binary" and reference.primary_metric == "roc_auc"
        return "roc_auc" if binary_auc else "accuracy"
    return reference.primary_metric if reference.primary_metric in {"rmse", "mae", "r2"} else "rmse"


def build_window_report(
    window: WindowData,
    reference: Reference,
    settings: Settings,
    model_name: str,
    window_label: str,
    comparison: dict[str, Any] | None = None,
) -> ReportSummary:
    """Build the report of `window` against `reference` and write its page; returns its
    summary, whose JSON the caller writes (`write_summary`) once the live decisions are in it.

    `comparison` (reporting.comparison.compare_pairs) adds the "Live comparison" section when
    the window holds a challenger, and is kept as the summary's `experiment`.

    Drift and the data summary cover the window's sample (all rows up to
    `settings.report_max_rows`); the live metric covers every labelled row (or the sample's,
    past `settings.report_max_labelled`); the quality section appears once
    `settings.report_min_labelled` labels have arrived.
    """
    current = window.frame
    quality = live_quality(window, reference, settings)
    metric_name = live_metric_name(reference)
    live = quality.metrics.get(metric_name)
    notes = about_notes(
        window, reference, settings, model_name, window_label, quality, live, metric_name
    )
    # The estimate is of the live metric, so concept drift sets the two side by side.
    estimate = estimate_window(window, reference, metric_name, settings.report_min_labelled)
    notes.insert(-1, estimate.note)
    if estimate.concept is not None:
        notes.insert(-1, concept_note(estimate.concept))
    unseen = count_unseen(window.unseen, window.sample_fraction)
    unseen_text = unseen_note(unseen, window.sample_rows, window.rows, window.sample_fraction)
    if unseen_text is not None:
        notes.insert(-1, unseen_text)
    content = build_drift_report(
        current.drop(columns=[ACTUAL]),
        reference.frame,
        reference.spec,
        quality.frame,
        notes,
        settings.drift_threshold,
        reference_typed=reference.typed,
        comparison_notes=page_notes(comparison, settings),
    )
    files = report_files(settings.reports_dir, reference.version, window.end)
    summary = _summary(
        window, reference, settings, content, quality, files, model_name, window_label, len(current)
    )
    if comparison is not None:
        summary["experiment"] = comparison
    _add_estimate(summary, estimate)
    summary["unseen_categories"] = unseen
    files.html.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(files.html, content.html)
    return summary


def _add_estimate(summary: ReportSummary, estimate: WindowEstimate) -> None:
    summary["estimated"] = estimate.estimated
    summary["estimate_note"] = estimate.note
    summary["concept_drift"] = estimate.concept
    summary["concept_drift_suspected"] = estimate.concept_drift_suspected
    summary["timings"]["estimate_seconds"] = estimate.seconds


def live_quality(window: WindowData, reference: Reference, settings: Settings) -> LiveQuality:
    """Live metrics once `settings.report_min_labelled` labels have arrived, else none."""
    labelled_rows = window.labelled_rows
    pairs = window.live
    if pairs is None or len(pairs) < settings.report_min_labelled:
        return LiveQuality(labelled_rows, {}, None, {})
    spec = reference.spec
    metrics, intervals = live_metrics_with_intervals(
        spec, pairs.actual, pairs.predicted, pairs.probabilities
    )
    mask = window.labelled_mask
    keep = sample_positions(window.ids[mask], settings.report_max_rows)
    rows = window.frame[mask]
    frame = (rows if keep is None else rows.iloc[keep]).rename(columns={ACTUAL: spec.target})
    frame = frame if len(frame) else None
    return LiveQuality(labelled_rows, metrics, frame, intervals, len(pairs), pairs.sampled)


def write_summary(summary: ReportSummary) -> None:
    """The JSON beside the page, written after it (the index lists a report once its JSON
    exists)."""
    write_atomic(Path(summary["json_path"]), json.dumps(jsonable(summary), indent=2))


def _summary(
    window: WindowData,
    reference: Reference,
    settings: Settings,
    content: DriftContent,
    quality: LiveQuality,
    files: ReportFiles,
    model_name: str,
    window_label: str,
    compared: int,
) -> ReportSummary:
    """What the `reports` collection, the JSON beside the page and the index keep."""
    metric_name = live_metric_name(reference)
    return ReportSummary(
        model_name=model_name,
        model_version=reference.version,
        window_start=window.start,
        window_end=window.end,
        window=window_label,
        rows=window.rows,
        rows_compared=compared,
        sampled=compared < window.rows,
        sample_fraction=window.sample_fraction,
        unkeyed_rows=window.unkeyed_rows,
        labelled_rows=quality.labelled_rows,
        versions_in_window=window.version_counts,
        drift_share=content.drift_share,
        drift_threshold=settings.drift_threshold,
        drift_detected=content.drift_share > settings.drift_threshold,
        drifted_columns=content.drifted_columns,
        column_drift=content.column_drift,
        prediction_drift=content.prediction_drift,
        metrics=quality.metrics,
        metric_intervals=quality.intervals,
        live_rows=quality.rows,
        live_sampled=quality.sampled,
        primary_metric=metric_name,
        live_metric=quality.metrics.get(metric_name),
        test_metric=reference.test_metrics.get(metric_name),
        quality_section=quality.frame is not None,
        evidently_metrics=content.quality,
        html_path=str(files.html),
        json_path=str(files.json),
        relative_html=files.relative_html,
        url=files.url(settings.reports_base_url),
        created_at=datetime.now(UTC),
        timings=ReportTimings(
            read_seconds=window.read_seconds,
            feedback_seconds=window.feedback_seconds,
            evidently_seconds=content.seconds,
        ),
    )


def describe(summary: ReportSummary) -> str:
    """One line for logs, the CLI and the run's final state."""
    line = (
        f"report v{summary['model_version']} {summary['rows']:,} rows: drift share "
        f"{summary['drift_share']:.2f} ({len(summary['drifted_columns'])} columns drifted)"
    )
    if summary.get("live_metric") is not None:
        line += (
            f", live {summary['primary_metric']} {summary['live_metric']:.4f} on "
            f"{summary['labelled_rows']:,} labelled rows"
        )
    else:
        line += f", {summary['labelled_rows']:,} labelled rows (too few for a live metric)"
    estimated = summary.get("estimated")
    if estimated:
        line += f", estimated {estimated['metric']} {estimated['value']:.4f}"
    if summary.get("concept_drift_suspected"):
        line += ", concept drift suspected"
    if summary.get("unseen_categories"):
        line += f", unseen categories in {len(summary['unseen_categories'])} feature(s)"
    return line


def _safe_segment(version: str) -> str:
    """A version as one path segment (versions are numbers; never let one climb out)."""
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(version))
    return cleaned or "unknown"
