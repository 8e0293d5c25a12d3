"""Exporter pieces that need no server: parsing, the cached source's time budget, thresholds,
and the staleness-guard automation definition."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from lifecycle import metric_names as names
from lifecycle.settings import Settings
from monitoring.exporter import (
    CachedSource,
    LifecycleCollector,
    Reading,
    Sample,
    duration_seconds,
    timestamp_seconds,
)


@pytest.mark.parametrize(
    ("text", "seconds"), [("3h", 10800), ("90s", 90), ("30m", 1800), ("1d", 86400), ("45", 45)]
)
def test_duration_seconds_parses_units(text: str, seconds: float) -> None:
    assert duration_seconds(text) == seconds


def test_duration_seconds_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        duration_seconds("three hours")


def test_timestamp_seconds_reads_iso_and_naive_datetimes() -> None:
    moment = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert timestamp_seconds(moment.isoformat()) == moment.timestamp()
    assert timestamp_seconds("2025-01-02T03:04:05Z") == moment.timestamp()
    assert (
        timestamp_seconds(moment.replace(tzinfo=None)) == moment.timestamp()
    )  # MongoDB: naive UTC
    assert timestamp_seconds("yesterday") is None
    assert timestamp_seconds(None) is None


def _slow_reader(delay: float, calls: list[float]):
    def read() -> Reading:
        calls.append(time.monotonic())
        time.sleep(delay)
        return Reading(ok=True, samples=[Sample(names.DATA_DRIFT_SHARE, {"model_name": "m"}, 0.5)])

    return read


def test_cached_source_never_waits_longer_than_its_budget() -> None:
    calls: list[float] = []
    source = CachedSource("reports", _slow_reader(1.0, calls), ttl=60, budget=0.2)
    start = time.monotonic()
    up, reading = source.get()
    assert time.monotonic() - start < 0.6
    assert (up, reading) == (False, None)  # nothing read yet, and the read is late
    up, _ = source.get()
    assert up is False and len(calls) == 1  # no second read while one is in flight
    time.sleep(1.0)
    up, reading = source.get()
    assert up is True and reading is not None and reading.samples[0].value == 0.5
    assert len(calls) == 1  # fresh within ttl: served from the cache


def test_cached_source_reports_a_failing_read_as_down() -> None:
    def broken() -> Reading:
        raise ConnectionError("store unreachable")

    up, reading = CachedSource("registry", broken, ttl=60, budget=1).get()
    assert up is False
    assert reading is not None and "ConnectionError: store unreachable" in reading.error


def test_collector_exports_thresholds_from_settings_without_any_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Stores on closed ports: the scrape still yields the settings' thresholds and up=0 gauges.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # end the refused reads quickly
    settings = Settings(
        mlflow_tracking_uri_override="http://127.0.0.1:1",
        mongo_uri="mongodb://127.0.0.1:1",
        min_metric=0.8,
        max_metric=0.99,
        stale_after_hours=12,
        report_window="1h",
        drift_threshold=0.4,
    )
    collector = LifecycleCollector(settings, cache_seconds=10, budget_seconds=0.3)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    text = generate_latest(registry).decode()
    collector.close()
    model = f'model_name="{settings.model_name}"'
    assert f'mlops_model_metric_threshold{{bound="min",metric="accuracy",{model}}} 0.8' in text
    assert f'mlops_model_metric_threshold{{bound="max",metric="accuracy",{model}}} 0.99' in text
    assert f"mlops_model_stale_after_seconds{{{model}}} 43200.0" in text
    assert f"mlops_report_window_seconds{{{model}}} 3600.0" in text
    assert f"mlops_data_drift_threshold{{{model}}} 0.4" in text
    assert 'mlops_exporter_source_up{source="registry"} 0.0' in text
    assert 'mlops_exporter_source_up{source="reports"} 0.0' in text


def test_collector_uses_error_metric_bounds_for_regression() -> None:
    settings = Settings(task="regression", mongo_uri="mongodb://127.0.0.1:1", max_metric=12.5)
    collector = LifecycleCollector(settings)
    samples = collector._threshold_samples({})
    collector.close()
    bounds = {s.labels["bound"]: s for s in samples if s.name == names.MODEL_METRIC_THRESHOLD}
    assert bounds["max"].labels["metric"] == "rmse" and bounds["max"].value == 12.5


def test_staleness_guard_definition_expects_completed_train_model_runs() -> None:
    from prefect.events.actions import SendNotification

    from deployments.automations import staleness_guard

    block_id = uuid4()
    automation = staleness_guard(block_id, timedelta(hours=36), deployment="daily")
    trigger = automation.trigger
    assert trigger.posture == "Proactive"
    assert trigger.expect == {"prefect.flow-run.Completed"}
    assert trigger.within == timedelta(hours=36) and trigger.threshold == 1
    related = [spec.root for spec in trigger.match_related]
    assert {"prefect.resource.role": "flow", "prefect.resource.name": "train-model"} in related
    assert {"prefect.resource.role": "deployment", "prefect.resource.name": "daily"} in related
    (action,) = automation.actions
    assert isinstance(action, SendNotification) and action.block_document_id == block_id


def test_staleness_guard_rejects_a_window_prefect_cannot_evaluate() -> None:
    from deployments.automations import staleness_guard

    with pytest.raises(ValueError, match="within: must be at least 10 s"):
        staleness_guard(uuid4(), timedelta(seconds=5))


def test_staleness_guard_is_not_applied_without_a_webhook() -> None:
    from deployments.automations import apply_staleness_guard

    # No server is contacted: with no webhook there is nothing to notify.
    assert apply_staleness_guard(Settings(alert_webhook_url=None)) is None
