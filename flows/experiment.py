"""The live-experiment steps of `build-reports`: compare the window's versions on live labels
(before the page is built, so the report shows it), then promote the shadow or roll the champion
back when the evidence and the switches say so (lifecycle.decisions.experiment). The comparison
and its decisions go into the report summary (`experiment`), so the HTML, the JSON, the `reports`
document, the index, the exporter, `mlops status` and `mlops experiment` carry it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from lifecycle.core.settings import Settings, Task, get_settings
from lifecycle.core.times import utcnow
from lifecycle.decisions import experiment
from lifecycle.decisions.live_test import LiveExperiment, PairedCounts, advance, experiment_id
from lifecycle.model.evaluation import REGRESSION_METRICS
from lifecycle.stores import registry
from lifecycle.stores.documents import ReportSummary
from lifecycle.stores.prediction_store import PredictionStore
from reporting.comparison import compare_pairs, describe
from reporting.window import WindowData


@task(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=2), cache_policy=NO_CACHE)
def compare_live(window: WindowData, metric: str, classes: Sequence[Any] = ()) -> dict[str, Any]:
    """Per-version live metrics and the paired test over the window's live pairs, against the
    current champion (an MLflow read: retried). `classes`: the serving model's."""
    champion = registry.version_by_alias(registry.CHAMPION, get_settings())
    champion_version = str(champion.version) if champion is not None else None
    return compare_pairs(window.live, champion_version, task_of(metric), metric, classes)


@task(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=2), cache_policy=NO_CACHE)
def count_pairs(comparison: dict[str, Any], window_end: datetime) -> dict[str, Any]:
    """The window's pairs into the challenger's sequential test (its `experiments` document,
    counted once per window: a retry or a report run again changes nothing). Returns the
    comparison with `sequential`, the experiment, so the page shows it."""
    paired = comparison.get("paired")
    if not paired:
        return comparison
    settings = get_settings()
    counts = experiment.paired_counts(experiment.PairedTest(**paired))
    store = PredictionStore.open(settings, "report")
    try:
        running = _advance(store, counts, window_end, settings)
    finally:
        store.close()
    return {**comparison, "sequential": running.to_document()}


@task(cache_policy=NO_CACHE)
def decide(summary: ReportSummary, comparison: dict[str, Any]) -> dict[str, Any]:
    """The promote / stop decision of the challenger's sequential test and the rollback
    decision on the champion's last reports, each acted on (alias move + event) when its switch
    allows. Returns the comparison with `decisions`."""
    settings = get_settings()
    champion_version = comparison.get("champion")
    found = comparison.get("sequential")
    running = LiveExperiment.from_document(found) if found else None
    store = PredictionStore.open(settings, "report")
    try:
        history = [
            (str(r.get("model_version")), _live(r.get("experiment"), r.get("model_version")))
            for r in store.list_reports(settings.model_name, settings.rollback_after_windows)
        ]
    finally:
        store.close()
    degenerate = (comparison.get("paired") or {}).get("challenger_degenerate") or []
    decisions = [experiment.live_decision(running, settings, degenerate)]
    if champion_version is not None and decisions[0].action == "none":
        version = str(summary["model_version"])
        current = [(version, _live(comparison, version))]
        task_kind = task_of(summary["primary_metric"])
        rollback = experiment.rollback(champion_version, current + history, task_kind, settings)
        decisions.append(rollback)
    decisions = [experiment.act(d, champion_version or "", settings) for d in decisions]
    decided = {**comparison, "decisions": [d.to_dict() for d in decisions]}
    _publish(decided, summary)
    return decided


def _advance(
    store: PredictionStore, counts: PairedCounts, window_end: datetime, settings: Settings
) -> LiveExperiment:
    """The challenger's experiment with this window counted, stored back."""
    key = experiment_id(settings.model_name, counts.champion, counts.challenger)
    found = store.experiments.find_one({"_id": key})
    current = LiveExperiment.from_document(found) if found else None
    running = advance(current, counts, window_end, utcnow(), settings)
    if running is not current:
        store.experiments.replace_one({"_id": key}, running.to_document(), upsert=True)
    return running


def _live(comparison: dict[str, Any] | None, version: Any) -> experiment.LiveMetric | None:
    """A version's live metric with its interval, from a comparison (a report's `experiment`)."""
    found = ((comparison or {}).get("live_versions") or {}).get(str(version))
    return experiment.LiveMetric(**found) if found else None


def task_of(metric: str) -> Task:
    # A classifier's live metric is ROC AUC (binary) or accuracy, whatever the class count:
    # "binary" stands for every classifier here.
    return "regression" if metric in REGRESSION_METRICS else "binary"


def _publish(comparison: dict[str, Any], summary: ReportSummary) -> None:
    logger = get_run_logger()
    lines = describe(comparison)
    for d in comparison["decisions"]:
        if d["action"] != "none" or comparison.get("paired"):
            lines.append(f"- decision: {d['reason']}")
        logger.info("live experiment: %s", d["reason"])
    if lines:
        create_markdown_artifact(
            "\n".join([f"# Live comparison, v{summary['model_version']} window", "", *lines]),
            key="live-comparison",
            description="; ".join(d["reason"] for d in comparison["decisions"]),
        )
