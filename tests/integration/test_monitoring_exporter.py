"""The exporter against a real MLflow store (sqlite in MLOPS_HOME) and the real MongoDB-wire
server: its values match the registry and the `reports` collection, and /metrics answers 200
when a store is down."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from mlflow import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from lifecycle import metric_names as names
from lifecycle.settings import Settings, get_settings
from lifecycle.store import PredictionStore
from lifecycle.times import utcnow
from monitoring.exporter import ExporterServer, serve_exporter, timestamp_seconds
from tests.fixtures.monitoring import hours_ago, register_version
from tests.fixtures.servers import MongoServer, free_port

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, timeout: float = 10.0) -> tuple[int, Samples, float]:
    """(status, {(name, sorted labels): value}, seconds taken)."""
    start = time.monotonic()
    with urllib.request.urlopen(url, timeout=timeout) as response:
        status, text = response.status, response.read().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return status, samples, time.monotonic() - start


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def report(model_name: str, version: str, created_ago_hours: float, **fields) -> dict:
    end = utcnow() - timedelta(hours=created_ago_hours)
    return {
        "model_name": model_name, "model_version": version,
        "window_start": end - timedelta(hours=3), "window_end": end, "rows": 400,
        "labelled_rows": 120, "drifted_columns": ["tenure", "monthly_charges"],
        "primary_metric": "accuracy", "html_path": "r.html", "json_path": "r.json",
        "sampled": False, "created_at": end, **fields,
    }  # fmt: skip


@pytest.fixture
def exporter_factory() -> Iterator:
    servers: list[ExporterServer] = []

    def start(settings: Settings, budget: float = 2.0) -> ExporterServer:
        server = serve_exporter("127.0.0.1", 0, settings, cache_seconds=0.5, budget_seconds=budget)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def test_exporter_values_match_registry_and_reports(
    mlops_home: Path, mongo_db: str, exporter_factory
) -> None:
    settings = get_settings()
    uri, name = settings.mlflow_tracking_uri, settings.model_name
    register_version(uri, name, hours_ago(50), "previous", {"accuracy": 0.86})
    register_version(
        uri,
        name,
        hours_ago(3),
        "champion",
        {"accuracy": 0.912, "f1": 0.84, "roc_auc": 0.951, "log_loss": 0.31},
    )
    register_version(uri, name, hours_ago(1), "challenger", {"accuracy": 0.65})
    store = PredictionStore.from_settings()
    store.insert_report(report(name, "2", 4, drift_share=0.5, metrics={"accuracy": 0.7}))
    store.insert_report(
        report(name, "2", 1, drift_share=0.25, metrics={"accuracy": 0.88, "f1": 0.79})
    )
    store.insert_report(report("other-model", "9", 0, drift_share=0.9, metrics={"accuracy": 0.1}))

    status, samples, _ = scrape(exporter_factory(settings).url)
    assert status == 200

    # Registry: every alias's version and training time, the champion's test metrics.
    client = MlflowClient(uri, uri)
    for alias in ("champion", "previous", "challenger"):
        version = client.get_model_version_by_alias(name, alias)
        labels = {"model_name": name, "alias": alias}
        assert value(samples, names.MODEL_ALIAS_VERSION, **labels) == float(version.version)
        assert value(samples, names.MODEL_LAST_TRAINED_TIMESTAMP_SECONDS, **labels) == (
            timestamp_seconds(version.tags["trained_at"])
        )
    champion = client.get_model_version_by_alias(name, "champion")
    test_metrics = {
        labels["metric"]: v
        for (metric, label_items), v in samples.items()
        if metric == names.MODEL_METRIC and (labels := dict(label_items))["dataset"] == "test"
    }
    assert test_metrics == {
        m: float(champion.tags[m]) for m in ("accuracy", "f1", "roc_auc", "log_loss")
    }
    assert value(
        samples,
        names.MODEL_METRIC,
        model_name=name,
        model_version=str(champion.version),
        metric="accuracy",
        dataset="test",
    ) == float(champion.tags["accuracy"])

    # Reports: the latest document of this model only.
    latest = store.latest_report(name)
    for metric, expected in latest["metrics"].items():
        assert (
            value(
                samples,
                names.MODEL_METRIC,
                model_name=name,
                model_version="2",
                metric=metric,
                dataset="live",
            )
            == expected
        )
    assert value(samples, names.DATA_DRIFT_SHARE, model_name=name) == latest["drift_share"]
    assert value(samples, names.REPORT_LAST_TIMESTAMP_SECONDS, model_name=name) == pytest.approx(
        latest["created_at"].timestamp(),
        abs=1e-3,  # MongoDB keeps milliseconds
    )
    assert not any(dict(k[1]).get("model_name") == "other-model" for k in samples)

    # Thresholds come from the settings, for the champion's primary metric.
    low, high = settings.metric_bounds("binary")
    assert (
        value(
            samples, names.MODEL_METRIC_THRESHOLD, model_name=name, metric="accuracy", bound="min"
        )
        == low
    )
    assert (
        value(
            samples, names.MODEL_METRIC_THRESHOLD, model_name=name, metric="accuracy", bound="max"
        )
        == high
    )
    assert value(samples, names.MODEL_STALE_AFTER_SECONDS, model_name=name) == 36 * 3600
    assert value(samples, names.REPORT_WINDOW_SECONDS, model_name=name) == 3 * 3600
    assert value(samples, names.EXPORTER_SOURCE_UP, source="registry") == 1
    assert value(samples, names.EXPORTER_SOURCE_UP, source="reports") == 1
    store.close()


def test_exporter_follows_an_alias_move(mlops_home: Path, mongo_db: str, exporter_factory) -> None:
    settings = get_settings()
    uri, name = settings.mlflow_tracking_uri, settings.model_name
    register_version(uri, name, hours_ago(40), "champion", {"accuracy": 0.8})
    server = exporter_factory(settings)
    _, before, _ = scrape(server.url)
    assert value(before, names.MODEL_ALIAS_VERSION, model_name=name, alias="champion") == 1

    register_version(uri, name, hours_ago(0), "champion", {"accuracy": 0.9})
    time.sleep(0.6)  # past the cache
    scrape(server.url)  # starts the re-read; the next scrape sees its result at the latest
    _, after, _ = scrape(server.url)
    assert value(after, names.MODEL_ALIAS_VERSION, model_name=name, alias="champion") == 2
    assert (
        value(
            after,
            names.MODEL_METRIC,
            model_name=name,
            model_version="2",
            metric="accuracy",
            dataset="test",
        )
        == 0.9
    )
    assert (
        value(
            after,
            names.MODEL_METRIC,
            model_name=name,
            model_version="1",
            metric="accuracy",
            dataset="test",
        )
        is None
    )


def test_exporter_answers_200_when_mongodb_goes_down(
    mlops_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exporter_factory
) -> None:
    mongo = MongoServer(free_port(), tmp_path / "own.db", tmp_path)  # ours alone, to stop it
    mongo.start()
    monkeypatch.setenv("MONGO_URI", mongo.uri)
    monkeypatch.setenv("MLOPS_MONGO_DB", "lifecycle")
    get_settings.cache_clear()
    settings = get_settings()
    register_version(
        settings.mlflow_tracking_uri,
        settings.model_name,
        hours_ago(2),
        "champion",
        {"accuracy": 0.9},
    )
    store = PredictionStore.from_settings()
    store.insert_report(
        report(settings.model_name, "1", 0, drift_share=0.2, metrics={"accuracy": 0.8})
    )
    store.close()
    server = exporter_factory(settings)
    _, samples, _ = scrape(server.url)
    assert value(samples, names.EXPORTER_SOURCE_UP, source="reports") == 1
    assert value(samples, names.DATA_DRIFT_SHARE, model_name=settings.model_name) == 0.2

    mongo.stop()
    time.sleep(0.6)
    status, samples, took = scrape(server.url)
    assert status == 200
    assert took < 5
    assert value(samples, names.EXPORTER_SOURCE_UP, source="reports") == 0
    assert value(samples, names.DATA_DRIFT_SHARE, model_name=settings.model_name) is None
    # What the registry says is still exported.
    assert value(samples, names.EXPORTER_SOURCE_UP, source="registry") == 1
    assert (
        value(samples, names.MODEL_ALIAS_VERSION, model_name=settings.model_name, alias="champion")
        == 1
    )

    mongo.start()  # back up: figures return without restarting the exporter
    time.sleep(0.6)
    status, samples, _ = scrape(server.url)
    assert value(samples, names.EXPORTER_SOURCE_UP, source="reports") == 1
    assert value(samples, names.DATA_DRIFT_SHARE, model_name=settings.model_name) == 0.2
    mongo.stop()


def test_exporter_answers_200_within_budget_when_registry_hangs(
    mlops_home: Path, mongo_db: str, monkeypatch: pytest.MonkeyPatch, exporter_factory
) -> None:
    # A tracking server that accepts connections but never answers: MLflow's client waits and
    # retries for minutes; the scrape must not.
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{listener.getsockname()[1]}")
    # The read still hangs (MLflow's 120 s request timeout); no retries after the listener
    # closes keeps the abandoned reader thread from logging retries into later tests.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    get_settings.cache_clear()
    settings = get_settings()
    store = PredictionStore.from_settings()
    store.insert_report(
        report(settings.model_name, "4", 0, drift_share=0.3, metrics={"accuracy": 0.77})
    )
    store.close()
    server = exporter_factory(settings, budget=1.5)
    try:
        status, samples, took = scrape(server.url)
        assert status == 200
        assert took < 4
        assert value(samples, names.EXPORTER_SOURCE_UP, source="registry") == 0
        assert (
            value(
                samples,
                names.MODEL_LAST_TRAINED_TIMESTAMP_SECONDS,
                model_name=settings.model_name,
                alias="champion",
            )
            is None
        )
        assert value(samples, names.EXPORTER_SOURCE_UP, source="reports") == 1
        assert (
            value(
                samples,
                names.MODEL_METRIC,
                model_name=settings.model_name,
                model_version="4",
                metric="accuracy",
                dataset="live",
            )
            == 0.77
        )
        # The read still hangs: the next scrape waits no longer and starts no second read.
        status, samples, took = scrape(server.url)
        assert status == 200 and took < 4
        assert value(samples, names.EXPORTER_SOURCE_UP, source="registry") == 0
        reader = server.collector.sources[0].thread_name
        assert sum(t.name == reader for t in threading.enumerate()) == 1
    finally:
        listener.close()


def test_exporter_command_rejects_a_port_in_use() -> None:
    from typer.testing import CliRunner

    from ops.cli import build_app

    server = serve_exporter("127.0.0.1", 0, Settings(mongo_uri="mongodb://127.0.0.1:1"))
    try:
        result = CliRunner().invoke(build_app(), ["exporter", "--port", str(server.port)])
    finally:
        server.close()
    assert result.exit_code == 2
    assert "--port" in result.output and "cannot listen" in result.output


def test_exporter_command_serves_metrics_and_stops_on_sigterm(
    mlops_home: Path, mongo_db: str
) -> None:
    import os
    import signal
    import subprocess
    import sys

    from tests.fixtures.servers import wait_for_port

    port = free_port()
    mlops = str(Path(sys.executable).parent / "mlops")
    proc = subprocess.Popen(
        [mlops, "exporter", "--port", str(port)],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(port, 30, proc)
        status, samples, _ = scrape(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        assert value(samples, names.EXPORTER_SOURCE_UP, source="reports") == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert f"exporter listening on http://127.0.0.1:{port}/metrics" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_exporter_reads_what_training_registers(
    trained_registry, mongo_server, exporter_factory
) -> None:
    # The real training flow's tags (trained_at, task, primary_metric, metric values), not ours.
    settings = trained_registry.settings.model_copy(
        update={"mongo_uri": mongo_server.uri, "mongo_db": "exporter_trained"}
    )
    _, samples, _ = scrape(exporter_factory(settings).url)
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    champion = client.get_model_version_by_alias(settings.model_name, "champion")
    labels = {"model_name": settings.model_name, "alias": "champion"}
    assert value(samples, names.MODEL_LAST_TRAINED_TIMESTAMP_SECONDS, **labels) == (
        timestamp_seconds(champion.tags["trained_at"])
    )
    primary = champion.tags["primary_metric"]
    assert value(samples, names.MODEL_METRIC, model_name=settings.model_name,
                 model_version=str(champion.version), metric=primary,
                 dataset="test") == float(champion.tags[primary])  # fmt: skip
    bounds = dict(zip(("min", "max"), settings.metric_bounds(champion.tags["task"]), strict=True))
    for bound, expected in bounds.items():
        assert value(samples, names.MODEL_METRIC_THRESHOLD, model_name=settings.model_name,
                     metric=primary, bound=bound) == expected  # fmt: skip
