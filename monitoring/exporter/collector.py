"""The Prometheus collector: the cached sources' figures, each source's health, and the alert
thresholds from the settings (so the static rule files compare against the user's values)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, get_args

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lifecycle.core import metric_names as names
from lifecycle.core.settings import Settings, Task, get_settings
from lifecycle.core.times import TimeValueError, parse_duration
from lifecycle.model.evaluation import REGRESSION_METRICS
from monitoring.exporter.cache import CachedSource
from monitoring.exporter.families import FAMILIES, Sample
from monitoring.exporter.readers import REGISTRY, REPORTS, ReportsReader, read_registry

log = logging.getLogger(__name__)
TASKS = get_args(Task)


def _families(samples: list[Sample]) -> Iterator[Metric]:
    """The samples as gauge families; families without a sample are left out (for absent())."""
    families = {
        name: GaugeMetricFamily(name, doc, labels=labels)
        for name, (doc, labels) in FAMILIES.items()
    }
    for sample in samples:
        labels = FAMILIES[sample.name][1]
        families[sample.name].add_metric([sample.labels[k] for k in labels], sample.value)
    return (family for family in families.values() if family.samples)


def source_samples(source: CachedSource, context: dict[str, Any]) -> list[Sample]:
    """One source's health series, and its figures when they may be shown.

    The reading's context (task, primary metric) is merged into `context`, first source first.
    """
    up, reading = source.get()
    health = {"source": source.name}
    samples = [Sample(names.EXPORTER_SOURCE_UP, health, float(up))]
    if reading is not None:
        samples.append(Sample(names.EXPORTER_SOURCE_READ_SECONDS, health, reading.duration))
    good = source.last_good
    if good is not None:
        samples.append(
            Sample(names.EXPORTER_SOURCE_LAST_SUCCESS_TIMESTAMP_SECONDS, health, good.finished_at)
        )
    if reading is not None and (up or reading.ok):
        samples.extend(reading.samples)
        for key, value in reading.context.items():
            context.setdefault(key, value)
    return samples


def report_window_seconds(settings: Settings) -> float | None:
    """MLOPS_REPORT_WINDOW in seconds, read as the report flow reads it; None when unreadable."""
    try:
        return parse_duration(settings.report_window, "MLOPS_REPORT_WINDOW").total_seconds()
    except TimeValueError as exc:
        log.warning("exporter: %s", exc)
        return None


def threshold_samples(settings: Settings, context: dict[str, Any]) -> list[Sample]:
    """The settings' alert thresholds, for the model's primary metric and, for a classifier
    ranked by another metric, for accuracy (MLOPS_MIN_ACCURACY / MLOPS_MAX_ACCURACY)."""
    model = {"model_name": settings.model_name}
    metric = context.get("primary_metric") or settings.primary_metric_override
    task: Task | None = context.get("task") or settings.task
    if task not in TASKS:
        task = "regression" if metric in REGRESSION_METRICS else "binary"
    metric = metric or settings.primary_metric(task)
    samples = [
        Sample(names.MODEL_STALE_AFTER_SECONDS, model, settings.stale_after_hours * 3600),
        Sample(names.DATA_DRIFT_THRESHOLD, model, settings.drift_threshold),
    ]
    window = report_window_seconds(settings)
    if window is not None:
        samples.append(Sample(names.REPORT_WINDOW_SECONDS, model, window))
    bounds = {metric: settings.metric_bounds(task)}
    if task != "regression" and metric != "accuracy":
        bounds["accuracy"] = (settings.min_accuracy, settings.max_accuracy)
    for name, (low, high) in bounds.items():
        for bound, value in (("min", low), ("max", high)):
            if value is not None:
                labels = {**model, "metric": name, "bound": bound}
                samples.append(Sample(names.MODEL_METRIC_THRESHOLD, labels, value))
    return samples


class LifecycleCollector(Collector):
    """Collects registry and report figures plus the alert thresholds from the settings."""

    def __init__(
        self,
        settings: Settings | None = None,
        cache_seconds: float = 10.0,
        budget_seconds: float = 2.0,
    ) -> None:
        self.settings = settings or get_settings()
        self.reports_reader = ReportsReader(self.settings)
        self.sources = [
            CachedSource(
                REGISTRY, lambda: read_registry(self.settings), cache_seconds, budget_seconds
            ),
            CachedSource(REPORTS, self.reports_reader, cache_seconds, budget_seconds),
        ]

    def describe(self) -> Iterator[Metric]:
        # Describing without collecting keeps registration from touching the stores.
        for name, (doc, labels) in FAMILIES.items():
            yield GaugeMetricFamily(name, doc, labels=labels)

    def collect(self) -> Iterator[Metric]:
        try:
            samples = self.samples()
        except Exception:  # a bug here must not turn a scrape into a 500; it is logged
            log.exception("exporter: collect failed")
            samples = [
                Sample(names.EXPORTER_SOURCE_UP, {"source": s.name}, 0) for s in self.sources
            ]
        yield from _families(samples)

    def samples(self) -> list[Sample]:
        """Every sample of one scrape: each source's, then the thresholds."""
        samples: list[Sample] = []
        context: dict[str, Any] = {}
        for source in self.sources:
            samples += source_samples(source, context)
        return samples + threshold_samples(self.settings, context)

    def close(self) -> None:
        self.reports_reader.close()
