"""The exporter against a real MLflow store (sqlite in MLOPS_HOME) and the real MongoDB-wire
server: its values match the registry and the `reports` collection, and /metrics answers 200
when a store is down."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from mlflow import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from lifecycle.core import metric_names as names
from lifecycle.core.settings import Settings, get_settings
from lifecycle.core.times import timestamp, utcnow
from lifecycle.core.waiting import wait_until
from lifecycle.stores.prediction_store import PredictionStore
from monitoring.exporter import ExporterServer, serve_exporter
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


# The first read of a source opens MLflow's sqlite store or pymongo's pool; while the two CPUs
# run other tests that can take several scrape budgets, so figures are waited for, with a bound.
SETTLE_SECONDS = 60


def scrape_until(
    url: str,
    what: str,
    done: Callable[[Samples], bool],
    timeout: float = SETTLE_SECONDS,
    max_seconds: float | None = None,
) -> Samples:
    """Scrape until `done(samples)`; every scrape on the way answers 200 (within `max_seconds`)."""

    def probe() -> Samples:
        status, samples, took = scrape(url)
        assert status == 200
        assert max_seconds is None or took < max_seconds, f"a scrape took {took:.1f} s"
        return samples

    return wait_until(probe, what, timeout, interval=0.2, done=done)


def up(samples: Samples, source: str) -> float | None:
    return value(samples, names.EXPORTER_SOURCE_UP, source=source)


def both_up(samples: Samples) -> bool:
    return up(samples, "registry") == 1 and up(samples, "reports") == 1


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


def _seed_registry(settings: Settings) -> None:
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


def _seed_reports(store: PredictionStore, name: str) -> None:
    store.insert_report(report(name, "2", 4, drift_share=0.5, metrics={"accuracy": 0.7}))
    store.insert_report(
        report(name, "2", 1, drift_share=0.25, metrics={"accuracy": 0.88, "f1": 0.79})
    )
    store.insert_report(report("other-model", "9", 0, drift_share=0.9, metrics={"accuracy": 0.1}))


def _assert_registry_figures(samples: Samples, settings: Settings) -> None:
    """Every alias's version and training time, the champion's test metrics (plain MLflow)."""
    uri, name = settings.mlflow_tracking_uri, settings.model_name
    client = MlflowClient(uri, uri)
    for alias in ("champion", "previous", "challenger"):
        version = client.get_model_version_by_alias(name, alias)
        labels = {"model_name": name, "alias": alias}
        assert value(samples, names.MODEL_ALIAS_VERSION, **labels) == float(version.version)
        assert value(samples, names.MODEL_LAST_TRAINED_TIMESTAMP_SECONDS, **labels) == (
            timestamp(version.tags["trained_at"])
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
    assert value(samples, names.MODEL_METRIC, model_name=name,
                 model_version=str(champion.version), metric="accuracy",
                 dataset="test") == float(champion.tags["accuracy"])  # fmt: skip


def _assert_report_figures(samples: Samples, latest: dict, name: str) -> None:
    """The latest `reports` document of this model only."""
    for metric, expected in latest["metrics"].items():
        assert value(samples, names.MODEL_METRIC, model_name=name, model_version="2",
                     metric=metric, dataset="live") == expected  # fmt: skip
    assert value(samples, names.DATA_DRIFT_SHARE, model_name=name) == latest["drift_share"]
    assert value(samples, names.REPORT_LAST_TIMESTAMP_SECONDS, model_name=name) == pytest.approx(
        latest["created_at"].timestamp(),
        abs=1e-3,  # MongoDB keeps milliseconds
    )
    assert not any(dict(k[1]).get("model_name") == "other-model" for k in samples)


def _assert_thresholds(samples: Samples, settings: Settings) -> None:
    """Thresholds come from the settings, for the champion's primary metric."""
    name = settings.model_name
    low, high = settings.metric_bounds("binary")
    for bound, expected in (("min", low), ("max", high)):
        assert value(samples, names.MODEL_METRIC_THRESHOLD, model_name=name,
                     metric="accuracy", bound=bound) == expected  # fmt: skip
    assert value(samples, names.MODEL_STALE_AFTER_SECONDS, model_name=name) == 36 * 3600
    assert value(samples, names.REPORT_WINDOW_SECONDS, model_name=name) == 3 * 3600  # "3H"
    assert up(samples, "registry") == 1
    assert up(samples, "reports") == 1


def test_exporter_values_match_registry_and_reports(
    mlops_home: Path, mongo_db: str, monkeypatch: pytest.MonkeyPatch, exporter_factory
) -> None:
    # Upper case, as a user may type it: the report flow accepts it, and the exporter used to
    # drop mlops_report_window_seconds for it (checked in _assert_thresholds: 3 h).
    monkeypatch.setenv("MLOPS_REPORT_WINDOW", "3H")
    get_settings.cache_clear()
    settings = get_settings()
    _seed_registry(settings)
    store = PredictionStore(settings.mongo_uri, settings.mongo_db)
    try:
        _seed_reports(store, settings.model_name)
        samples = scrape_until(exporter_factory(settings).url, "both sources up", both_up)
        _assert_registry_figures(samples, settings)
        _assert_report_figures(
            samples, store.latest_report(settings.model_name), settings.model_name
        )
        _assert_thresholds(samples, settings)
    finally:
        store.close()


def _champion(samples: Samples, name: str) -> float | None:
    return value(samples, names.MODEL_ALIAS_VERSION, model_name=name, alias="champion")


def test_exporter_follows_an_alias_move(mlops_home: Path, mongo_db: str, exporter_factory) -> None:
    settings = get_settings()
    uri, name = settings.mlflow_tracking_uri, settings.model_name
    register_version(uri, name, hours_ago(40), "champion", {"accuracy": 0.8})
    server = exporter_factory(settings)
    before = scrape_until(server.url, "a champion", lambda s: _champion(s, name) is not None)
    assert _champion(before, name) == 1

    register_version(uri, name, hours_ago(0), "champion", {"accuracy": 0.9})
    # Past the 0.5 s cache the next scrape starts a re-read; 30 s bounds a slow one under load.
    after = scrape_until(server.url, "the champion at v2", lambda s: _champion(s, name) == 2, 30)
    assert value(after, names.MODEL_METRIC, model_name=name, model_version="2",
                 metric="accuracy", dataset="test") == 0.9  # fmt: skip
    assert value(after, names.MODEL_METRIC, model_name=name, model_version="1",
                 metric="accuracy", dataset="test") is None  # fmt: skip


def _drift_share(samples: Samples, settings: Settings) -> float | None:
    return value(samples, names.DATA_DRIFT_SHARE, model_name=settings.model_name)


def _reports_down(samples: Samples) -> bool:
    return up(samples, "reports") == 0 and up(samples, "registry") == 1


def test_exporter_answers_200_when_mongodb_goes_down(
    mlops_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exporter_factory
) -> None:
    mongo = MongoServer(free_port(), tmp_path / "own.db", tmp_path)  # ours alone, to stop it
    mongo.start()
    monkeypatch.setenv("MONGO_URI", mongo.uri)
    monkeypatch.setenv("MLOPS_MONGO_DB", "lifecycle")
    get_settings.cache_clear()
    settings = get_settings()
    register_version(settings.mlflow_tracking_uri, settings.model_name, hours_ago(2),
                     "champion", {"accuracy": 0.9})  # fmt: skip
    store = PredictionStore(settings.mongo_uri, settings.mongo_db)
    store.insert_report(
        report(settings.model_name, "1", 0, drift_share=0.2, metrics={"accuracy": 0.8})
    )
    store.close()
    # Budget 1.5 s per source, two sources: a scrape ends within 3 s plus 2 s of slack for
    # thread wake-ups and HTTP on a loaded machine, so 5 s.
    server = exporter_factory(settings, budget=1.5)
    try:
        samples = scrape_until(server.url, "reports up", lambda s: up(s, "reports") == 1)
        assert _drift_share(samples, settings) == 0.2

        mongo.stop()
        down = scrape_until(server.url, "reports down, registry up", _reports_down, 30, 5)
        assert up(down, "reports") == 0
        assert _drift_share(down, settings) is None
        # What the registry says is still exported.
        assert up(down, "registry") == 1
        assert _champion(down, settings.model_name) == 1

        mongo.start()  # back up: figures return without restarting the exporter
        samples = scrape_until(server.url, "reports back up", lambda s: up(s, "reports") == 1, 30)
        assert _drift_share(samples, settings) == 0.2
    finally:
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
    name = settings.model_name
    store = PredictionStore(settings.mongo_uri, settings.mongo_db)
    store.insert_report(report(name, "4", 0, drift_share=0.3, metrics={"accuracy": 0.77}))
    store.close()
    # Budget 1 s per source: each scrape waits 1 s for the hanging read and at most 1 s for the
    # reports; 4 s leaves 2 s for thread wake-ups and HTTP on a loaded machine.
    server = exporter_factory(settings, budget=1.0)
    try:
        samples = scrape_until(server.url, "reports up while the registry hangs",
                               lambda s: up(s, "reports") == 1, max_seconds=4)  # fmt: skip
        assert up(samples, "registry") == 0
        assert value(samples, names.MODEL_LAST_TRAINED_TIMESTAMP_SECONDS, model_name=name,
                     alias="champion") is None  # fmt: skip
        assert value(samples, names.MODEL_METRIC, model_name=name, model_version="4",
                     metric="accuracy", dataset="live") == 0.77  # fmt: skip
        # The read still hangs: the next scrape waits no longer and starts no second read.
        status, samples, took = scrape(server.url)
        assert status == 200 and took < 4
        assert up(samples, "registry") == 0
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
        wait_for_port(port, SETTLE_SECONDS, proc)  # the CLI's imports take seconds under load
        url = f"http://127.0.0.1:{port}/metrics"
        scrape_until(url, "reports up", lambda s: up(s, "reports") == 1)
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
    samples = scrape_until(exporter_factory(settings).url, "both sources up", both_up)
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    champion = client.get_model_version_by_alias(settings.model_name, "champion")
    labels = {"model_name": settings.model_name, "alias": "champion"}
    assert value(samples, names.MODEL_LAST_TRAINED_TIMESTAMP_SECONDS, **labels) == (
        timestamp(champion.tags["trained_at"])
    )
    primary = champion.tags["primary_metric"]
    assert value(samples, names.MODEL_METRIC, model_name=settings.model_name,
                 model_version=str(champion.version), metric=primary,
                 dataset="test") == float(champion.tags[primary])  # fmt: skip
    bounds = dict(zip(("min", "max"), settings.metric_bounds(champion.tags["task"]), strict=True))
    for bound, expected in bounds.items():
        assert value(samples, names.MODEL_METRIC_THRESHOLD, model_name=settings.model_name,
                     metric=primary, bound=bound) == expected  # fmt: skip
