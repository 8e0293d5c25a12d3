"""Exporter pieces that need no server: the cached source's time budget and cache, thresholds and
the report window from the settings (durations through lifecycle.core.times, the one parser)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from lifecycle.core import metric_names as names
from lifecycle.core.settings import Settings
from lifecycle.core.waiting import wait_until
from monitoring.exporter import LifecycleCollector
from monitoring.exporter.cache import CachedSource
from monitoring.exporter.collector import threshold_samples
from monitoring.exporter.families import Reading, Sample

# Slack on top of a budget for thread wake-ups on a loaded 2-core machine (tens of ms each when
# the CPUs are busy); a scrape that waited for the read itself would block until released.
SCHEDULING_SLACK = 1.0


def _gated_reader(release: threading.Event, calls: list[float]) -> Callable[[], Reading]:
    """A read that blocks until `release` is set (bounded, so a failing test cannot hang)."""

    def read() -> Reading:
        calls.append(time.monotonic())
        release.wait(60)
        return Reading(ok=True, samples=[_drift(0.5)])

    return read


def _drift(value: float) -> Sample:
    return Sample(names.DATA_DRIFT_SHARE, {"model_name": "m"}, value)


def test_cached_source_never_waits_longer_than_its_budget() -> None:
    calls: list[float] = []
    release = threading.Event()
    source = CachedSource("reports", _gated_reader(release, calls), ttl=60, budget=0.2)
    try:
        start = time.monotonic()
        up, reading = source.get()
        assert time.monotonic() - start < 0.2 + SCHEDULING_SLACK
        assert (up, reading) == (False, None)  # nothing read yet, and the read is late
        up, _ = source.get()
        assert up is False and len(calls) == 1  # no second read while one is in flight
    finally:
        release.set()
    # Once the read ends, the next scrape shows it; 30 s bounds a thread start on a busy machine.
    up, reading = wait_until(source.get, "the released read to be served", 30, done=lambda r: r[0])
    assert reading is not None and reading.samples[0].value == 0.5
    assert source.get() == (True, reading)
    assert len(calls) == 1  # fresh within ttl: served from the cache


def test_cached_source_reads_again_once_the_ttl_has_passed() -> None:
    calls: list[float] = []
    release = threading.Event()
    release.set()  # reads end at once
    source = CachedSource("reports", _gated_reader(release, calls), ttl=0.2, budget=5)
    assert source.get()[0] is True and len(calls) == 1
    # A second read starts only after the ttl; 30 s bounds it on a busy machine.
    wait_until(
        lambda: source.get() and len(calls), "a re-read after the ttl", 30, 0.05, lambda n: n >= 2
    )
    assert len(calls) >= 2 and calls[1] - calls[0] >= 0.2


def test_cached_source_reports_a_failing_read_as_down() -> None:
    def broken() -> Reading:
        raise ConnectionError("store unreachable")

    # The read fails at once; the 5 s budget only bounds a thread start on a loaded machine.
    up, reading = CachedSource("registry", broken, ttl=60, budget=5).get()
    assert up is False
    assert reading is not None and "ConnectionError: store unreachable" in reading.error


def _scrape(settings: Settings) -> str:
    """One scrape of a collector whose stores are on closed ports (their reads fail or time out)."""
    collector = LifecycleCollector(settings, cache_seconds=10, budget_seconds=0.3)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    try:
        return generate_latest(registry).decode()
    finally:
        collector.close()


def _offline(**fields) -> Settings:
    return Settings(
        mlflow_tracking_uri_override="http://127.0.0.1:1",
        mongo_uri="mongodb://127.0.0.1:1",
        **fields,
    )


def test_collector_exports_thresholds_from_settings_without_any_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Stores on closed ports: the scrape still yields the settings' thresholds and up=0 gauges.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # end the refused reads quickly
    settings = _offline(
        min_metric=0.8,
        max_metric=0.99,
        stale_after_hours=12,
        report_window="1h",
        drift_threshold=0.4,
    )
    text = _scrape(settings)
    model = f'model_name="{settings.model_name}"'
    assert f'mlops_model_metric_threshold{{bound="min",metric="roc_auc",{model}}} 0.8' in text
    assert f'mlops_model_metric_threshold{{bound="max",metric="roc_auc",{model}}} 0.99' in text
    # Ranked by ROC AUC, the classifier keeps its accuracy alerts at their own thresholds.
    assert f'mlops_model_metric_threshold{{bound="min",metric="accuracy",{model}}} 0.7' in text
    assert f'mlops_model_metric_threshold{{bound="max",metric="accuracy",{model}}} 0.995' in text
    assert f"mlops_model_stale_after_seconds{{{model}}} 43200.0" in text
    assert f"mlops_report_window_seconds{{{model}}} 3600.0" in text
    assert f"mlops_data_drift_threshold{{{model}}} 0.4" in text
    assert 'mlops_exporter_source_up{source="registry"} 0.0' in text
    assert 'mlops_exporter_source_up{source="reports"} 0.0' in text


def test_collector_publishes_an_upper_case_report_window(monkeypatch: pytest.MonkeyPatch) -> None:
    # MLOPS_REPORT_WINDOW=3H is what the report flow accepts; the exporter used to drop it.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    settings = _offline(report_window="3H")
    text = _scrape(settings)
    assert f'mlops_report_window_seconds{{model_name="{settings.model_name}"}} 10800.0' in text


@pytest.mark.parametrize(
    ("window", "seconds"), [("3h", 10800), ("3H", 10800), ("90m", 5400), ("1d", 86400)]
)
def test_report_window_seconds_reads_the_window_as_the_flow_does(
    window: str, seconds: float
) -> None:
    samples = threshold_samples(Settings(report_window=window), {})
    (sample,) = [s for s in samples if s.name == names.REPORT_WINDOW_SECONDS]
    assert sample.value == seconds


def test_unreadable_report_window_is_left_out_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="monitoring.exporter.collector"):
        samples = threshold_samples(Settings(report_window="three hours"), {})
    assert not [s for s in samples if s.name == names.REPORT_WINDOW_SECONDS]
    assert any(s.name == names.DATA_DRIFT_THRESHOLD for s in samples)  # the rest still there
    assert "MLOPS_REPORT_WINDOW" in caplog.text and "'three hours'" in caplog.text


def test_collector_uses_error_metric_bounds_for_regression() -> None:
    settings = Settings(task="regression", mongo_uri="mongodb://127.0.0.1:1", max_metric=12.5)
    samples = threshold_samples(settings, {})
    bounds = {s.labels["bound"]: s for s in samples if s.name == names.MODEL_METRIC_THRESHOLD}
    assert bounds["max"].labels["metric"] == "rmse" and bounds["max"].value == 12.5


def test_collector_takes_the_primary_metric_from_the_champion() -> None:
    settings = Settings(min_metric=0.7, max_metric=0.99)
    samples = threshold_samples(settings, {"primary_metric": "f1", "task": "binary"})
    bounds = {
        (s.labels["metric"], s.labels["bound"]): s.value
        for s in samples
        if s.name == names.MODEL_METRIC_THRESHOLD
    }
    assert bounds == {
        ("f1", "min"): 0.7,
        ("f1", "max"): 0.99,
        ("accuracy", "min"): 0.70,  # MLOPS_MIN_ACCURACY: the accuracy alerts stay
        ("accuracy", "max"): 0.995,
    }
    regression = threshold_samples(settings, {"primary_metric": "rmse", "task": "regression"})
    assert {s.labels["metric"] for s in regression if s.name == names.MODEL_METRIC_THRESHOLD} == {
        "rmse"
    }


def test_report_samples_export_the_estimate_its_bounds_and_the_concept_verdict() -> None:
    from lifecycle.core import metric_names as names
    from monitoring.exporter.readers import report_samples

    report = {
        "model_name": "m",
        "model_version": "4",
        "metrics": {"accuracy": 0.51},
        "estimated": {"metric": "accuracy", "value": 0.74, "low": 0.72, "high": 0.77, "rows": 9},
        "concept_drift_suspected": True,
    }
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in report_samples(report)}
    version = (("metric", "accuracy"), ("model_name", "m"), ("model_version", "4"))
    estimated = (("dataset", "estimated"), *version)
    assert samples[(names.MODEL_METRIC, tuple(sorted(estimated)))] == 0.74
    for bound, value in (("low", 0.72), ("high", 0.77)):
        labels = tuple(sorted((("bound", bound), *version)))
        assert samples[(names.MODEL_METRIC_ESTIMATE_BOUND, labels)] == value
    assert samples[(names.MODEL_CONCEPT_DRIFT_SUSPECTED, (("model_name", "m"),))] == 1.0


def test_report_samples_without_an_estimate_export_none() -> None:
    from lifecycle.core import metric_names as names
    from monitoring.exporter.readers import report_samples

    report = {"model_name": "m", "model_version": "4", "estimated": None}
    exported = {s.name for s in report_samples(report)}
    assert names.MODEL_METRIC_ESTIMATE_BOUND not in exported
    assert names.MODEL_CONCEPT_DRIFT_SUSPECTED not in exported
