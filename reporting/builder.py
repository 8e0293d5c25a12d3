"""One report from one window: pick the sample, build the Evidently page, write
`<reports_dir>/<model_version>/<window-end>.html|json`, and shape the summary the `reports`
collection keeps."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from lifecycle.documents import ReportSummary, ReportTimings
from lifecycle.settings import LOWER_IS_BETTER, Settings
from reporting.drift import DriftContent, build_drift_report, live_metrics
from reporting.reference import Reference
from reporting.window import ACTUAL, PREDICTION, WindowData, sample_positions

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
    """Accuracy for classifiers (it needs no probabilities); the primary metric otherwise."""
    if reference.spec.is_classifier:
        return "accuracy"
    return reference.primary_metric if reference.primary_metric in {"rmse", "mae", "r2"} else "rmse"


@dataclass(frozen=True)
class LiveQuality:
    """The window's labelled rows: the live metrics over all of them, and the frame (sampled
    to the cap, target renamed) for Evidently's quality preset, or None below the minimum."""

    labelled_rows: int
    metrics: dict[str, float]
    frame: pd.DataFrame | None


def build_window_report(
    window: WindowData,
    reference: Reference,
    settings: Settings,
    model_name: str,
    window_label: str,
) -> ReportSummary:
    """Build and write the report of `window` against `reference`; returns its summary.

    Drift and the data summary cover all rows, or a deterministic sample of
    `settings.report_max_rows` of them; the live metric covers every labelled row; the quality
    section appears once `settings.report_min_labelled` labels have arrived.
    """
    positions = sample_positions(window.ids, settings.report_max_rows)
    current = window.frame if positions is None else window.frame.iloc[positions]
    quality = live_quality(window, reference, settings)
    metric_name = live_metric_name(reference)
    live = quality.metrics.get(metric_name)
    notes = _notes(
        window, reference, settings, model_name, window_label, len(current), live, metric_name
    )
    content = build_drift_report(
        current.drop(columns=[ACTUAL]),
        reference.frame,
        reference.spec,
        quality.frame,
        notes,
        settings.drift_threshold,
    )
    files = report_files(settings.reports_dir, reference.version, window.end)
    summary = _summary(
        window, reference, settings, content, quality, files, model_name, window_label, len(current)
    )
    write_report(files, content.html, summary)
    return summary


def live_quality(window: WindowData, reference: Reference, settings: Settings) -> LiveQuality:
    """Live metrics once `settings.report_min_labelled` labels have arrived, else none."""
    mask = window.labelled_mask
    labelled_rows = int(mask.sum())
    if labelled_rows < settings.report_min_labelled:
        return LiveQuality(labelled_rows, {}, None)
    spec = reference.spec
    rows = window.frame[mask]
    metrics = live_metrics(spec, rows[ACTUAL], rows[PREDICTION])
    keep = sample_positions(window.ids[mask], settings.report_max_rows)
    frame = (rows if keep is None else rows.iloc[keep]).rename(columns={ACTUAL: spec.target})
    return LiveQuality(labelled_rows, metrics, frame)


def write_report(files: ReportFiles, html: str, summary: ReportSummary) -> None:
    """The page, then its JSON summary (the index lists a report once its JSON exists)."""
    files.html.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(files.html, html)
    write_atomic(files.json, json.dumps(jsonable(summary), indent=2))


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
        labelled_rows=quality.labelled_rows,
        versions_in_window=window.version_counts,
        drift_share=content.drift_share,
        drift_threshold=settings.drift_threshold,
        drift_detected=content.drift_share > settings.drift_threshold,
        drifted_columns=content.drifted_columns,
        column_drift=content.column_drift,
        prediction_drift=content.prediction_drift,
        metrics=quality.metrics,
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


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so nginx never serves half a page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; nginx workers must read them
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def jsonable(value: Any) -> Any:
    """Datetimes as ISO 8601 UTC strings, containers walked; the rest unchanged."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


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
    return line


def _notes(
    window: WindowData,
    reference: Reference,
    settings: Settings,
    model_name: str,
    window_label: str,
    compared: int,
    live: float | None,
    metric_name: str,
) -> list[str]:
    """The "About this report" paragraphs (markdown) at the top of the page."""
    start = jsonable(window.start)
    end = jsonable(window.end)
    notes = [
        f"**{model_name}** version **{reference.version}** · window **{window_label}** from "
        f"{start} to {end} · **{window.rows:,}** predictions."
    ]
    if len(window.version_counts) > 1:
        counts = ", ".join(f"v{v}: {n:,}" for v, n in sorted(window.version_counts.items()))
        notes.append(
            f"The window holds predictions of several versions ({counts}); the reference is "
            f"that of version {reference.version}, the latest one serving in the window."
        )
    if compared < window.rows:
        notes.append(
            f"**Sampled:** {compared:,} of {window.rows:,} rows (chosen deterministically by "
            f"prediction id; cap `MLOPS_REPORT_MAX_ROWS` = {settings.report_max_rows:,}) are "
            "compared with the reference. The live metric uses every labelled row."
        )
    labelled = window.labelled_rows
    share = labelled / window.rows if window.rows else 0.0
    if live is not None:
        direction = "lower" if metric_name in LOWER_IS_BETTER else "higher"
        test = reference.test_metrics.get(metric_name)
        vs_test = f" (test {test:.4f})" if test is not None else ""
        notes.append(
            f"Ground truth has arrived for {labelled:,} predictions ({share:.0%}): live "
            f"{metric_name} **{live:.4f}**{vs_test}, {direction} is better."
        )
    else:
        notes.append(
            f"Ground truth has arrived for {labelled:,} predictions; the quality section needs "
            f"at least {settings.report_min_labelled} (`MLOPS_REPORT_MIN_LABELLED`)."
        )
    notes.append(
        f"The dataset counts as drifted when more than {settings.drift_threshold:.0%} of the "
        "feature columns drift (`MLOPS_DRIFT_THRESHOLD`)."
    )
    return notes


def _safe_segment(version: str) -> str:
    """A version as one path segment (versions are numbers; never let one climb out)."""
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(version))
    return cleaned or "unknown"
