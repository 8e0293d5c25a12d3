"""The "About this report" paragraphs (markdown) at the top of a report page: the window, its
versions, the sample and its error, the labels and the live metric, the drift rule."""

from __future__ import annotations

from lifecycle.core.settings import LOWER_IS_BETTER, Settings
from reporting.files import jsonable
from reporting.live import LiveQuality
from reporting.reference import Reference
from reporting.window import WindowData


def about_notes(
    window: WindowData,
    reference: Reference,
    settings: Settings,
    model_name: str,
    window_label: str,
    quality: LiveQuality,
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
    if window.sampled:
        notes.append(_sampling_note(window, settings))
    labelled = quality.labelled_rows
    share = labelled / window.rows if window.rows else 0.0
    if live is not None:
        direction = "lower" if metric_name in LOWER_IS_BETTER else "higher"
        test = reference.test_metrics.get(metric_name)
        vs_test = f" (test {test:.4f})" if test is not None else ""
        interval = quality.intervals.get(metric_name) or []
        ci = f", 95 % interval {interval[0]:.4f} to {interval[1]:.4f}" if interval else ""
        over = (
            f"the {quality.rows:,} labelled rows of the sample (more than "
            f"`MLOPS_REPORT_MAX_LABELLED` = {settings.report_max_labelled:,} labels arrived; "
            "the labelled count is estimated from the sample)"
            if quality.sampled
            else f"all {quality.rows:,} labelled rows"
        )
        notes.append(
            f"Ground truth has arrived for {labelled:,} predictions ({share:.0%}): live "
            f"{metric_name} **{live:.4f}**{ci}{vs_test}, {direction} is better; computed on "
            f"{over}."
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


def _sampling_note(window: WindowData, settings: Settings) -> str:
    """What was sampled, how, and how large its error is."""
    p = window.sample_fraction
    note = (
        f"**Sampled:** drift and the data summary were computed on a sample of "
        f"{window.sample_rows:,} of the window's {window.rows:,} rows (p = {p:.4f}: the rows "
        f"whose `sample_key`, drawn uniformly when each was logged, is below p; cap "
        f"`MLOPS_REPORT_MAX_ROWS` = {settings.report_max_rows:,}). A uniform sample of this "
        f"size estimates a share to within about ±{0.98 / max(window.sample_rows, 1) ** 0.5:.1%} "
        "(95 %), and the same window always gives the same sample."
    )
    if window.unkeyed_rows:
        note += (
            f" {window.unkeyed_rows:,} rows were logged before `sample_key` existed; p of "
            "them were kept by the hash of their prediction id."
        )
    return note
