"""The exporter's two sources, each read into one `Reading`: the registry (MLflow, only through
`lifecycle.stores.registry`) and the latest `reports` document (MongoDB, through the store)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from lifecycle.core import metric_names as names
from lifecycle.core.settings import Settings
from lifecycle.core.times import timestamp
from lifecycle.stores import registry
from lifecycle.stores.documents import ReportSummary
from monitoring.exporter.families import Reading, Sample

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from lifecycle.stores.prediction_store import PredictionStore

log = logging.getLogger(__name__)

# Source names: the `source` label of the exporter's own health series.
REGISTRY = "registry"
REPORTS = "reports"


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def metric_samples(
    model_name: str, version: str, metrics: Mapping[str, Any], dataset: str
) -> list[Sample]:
    """`mlops_model_metric` samples of one version; values that are not numbers are left out."""
    samples = []
    for metric, raw in metrics.items():
        value = _number(raw)
        if value is not None:
            labels = {
                "model_name": model_name,
                "model_version": version,
                "metric": str(metric),
                "dataset": dataset,
            }
            samples.append(Sample(names.MODEL_METRIC, labels, value))
    return samples


def _alias_samples(model_name: str, alias: str, version: ModelVersion) -> list[Sample]:
    labels = {"model_name": model_name, "alias": alias}
    samples = [Sample(names.MODEL_ALIAS_VERSION, labels, float(version.version))]
    trained = registry.trained_at(version)
    if trained is not None:
        samples.append(Sample(names.MODEL_LAST_TRAINED_TIMESTAMP_SECONDS, labels, trained))
    return samples


def _test_metrics(version: ModelVersion) -> dict[str, float]:
    try:
        return registry.version_metrics(version)
    except ValueError as exc:  # a metric tag that is not a number: lose the metrics, not ages
        log.warning("exporter: metric tags of version %s: %s", version.version, exc)
        return {}


def read_registry(settings: Settings) -> Reading:
    """Alias versions, their training times, and the champion's test metrics from MLflow.

    No registered model yet is a fact (an empty reading), not an outage; a registry that cannot
    be read raises (RegistryUnavailableError), which the cached source reports as down.
    """
    name = settings.model_name
    pointed = registry.aliases(settings)
    samples: list[Sample] = []
    context: dict[str, Any] = {}
    for alias in registry.ALIASES:
        if alias not in pointed:
            continue
        version = registry.get_version(pointed[alias], settings)
        samples += _alias_samples(name, alias, version)
        if alias == registry.CHAMPION:
            context.update(
                task=version.tags.get(registry.TAG_TASK),
                primary_metric=version.tags.get(registry.TAG_PRIMARY_METRIC),
            )
            samples += metric_samples(name, str(version.version), _test_metrics(version), "test")
    return Reading(ok=True, samples=samples, context=context)


def report_samples(report: ReportSummary) -> list[Sample]:
    """Live metrics, drift share and creation time of one report summary."""
    name = report["model_name"]
    model = {"model_name": name}
    version = str(report.get("model_version", ""))
    samples = metric_samples(name, version, report.get("metrics") or {}, "live")
    # Other versions of the window's live comparison (a shadow or canary challenger).
    comparison = report.get("experiment") or {}
    for other, live in (comparison.get("live_versions") or {}).items():
        if other != version and live.get("value") is not None:
            metric = {comparison.get("metric") or report.get("primary_metric"): live["value"]}
            samples += metric_samples(name, str(other), metric, "live")
    samples += estimate_samples(name, version, report)
    drift = _number(report.get("drift_share"))
    if drift is not None:
        samples.append(Sample(names.DATA_DRIFT_SHARE, model, drift))
    created = timestamp(report.get("created_at") or report.get("window_end"))
    if created is not None:
        samples.append(Sample(names.REPORT_LAST_TIMESTAMP_SECONDS, model, created))
    return samples


def estimate_samples(name: str, version: str, report: ReportSummary) -> list[Sample]:
    """The label-free estimate of one report: its value (dataset="estimated"), the bounds of its
    interval, and whether its labels contradicted it."""
    estimated = report.get("estimated")
    samples: list[Sample] = []
    if estimated and _number(estimated.get("value")) is not None:
        metric = str(estimated["metric"])
        samples += metric_samples(name, version, {metric: estimated["value"]}, "estimated")
        for bound in ("low", "high"):
            value = _number(estimated.get(bound))
            if value is not None:
                labels = {"model_name": name, "model_version": version, "metric": metric}
                labels["bound"] = bound
                samples.append(Sample(names.MODEL_METRIC_ESTIMATE_BOUND, labels, value))
    if "concept_drift_suspected" in report:
        suspected = float(bool(report.get("concept_drift_suspected")))
        samples.append(Sample(names.MODEL_CONCEPT_DRIFT_SUSPECTED, {"model_name": name}, suspected))
    return samples


class ReportsReader:
    """Reads the latest `reports` document; keeps one pymongo client (it pools connections)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: PredictionStore | None = None

    def __call__(self) -> Reading:
        from lifecycle.stores.prediction_store import PredictionStore

        if self._store is None:
            self._store = PredictionStore.open(self.settings, "exporter")
        found = self._store.latest_report(self.settings.model_name)
        if found is None:
            return Reading(ok=True)
        report = cast(ReportSummary, found)
        return Reading(
            ok=True,
            samples=report_samples(report),
            context={"primary_metric": report.get("primary_metric")},
        )

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
