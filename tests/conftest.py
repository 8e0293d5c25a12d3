"""Shared fixtures. Server fixtures live in tests/fixtures/ (one module per area)."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lifecycle.settings import get_settings

pytest_plugins = [
    "tests.fixtures.servers",
    "tests.fixtures.training",
    "tests.fixtures.serving",
    "tests.fixtures.reporting",
    "tests.fixtures.monitoring",
    "tests.fixtures.operations",
]


def _fail_skips_in_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Under CI=true nothing may skip (a fresh CI machine has every server, `make servers`): a
    skip there, from `require_binary` or any other source, becomes a failure that says why."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    if os.environ.get("CI", "").lower() != "true":
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=true, where nothing may skip: {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report = yield
    _fail_skips_in_ci(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport:
    report = yield
    _fail_skips_in_ci(report)
    return report


@pytest.fixture(autouse=True)
def _no_outside_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never write to a developer's tracking server, nor to another test's store through
    an MLFLOW_TRACKING_URI some library exported into os.environ."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_prefect_events_worker() -> Iterator[None]:
    """Prefect keeps one events worker per process, keyed without the API URL: once a test has
    emitted events to one server (the `prefect_server` fixture), later events would still go
    there instead of to the test harness. Draining after each test makes the next emitter bind
    to the server current at that time."""
    yield
    worker = sys.modules.get("prefect.events.worker")
    if worker is not None:
        worker.EventsWorker.drain_all(timeout=10)


@pytest.fixture
def mlops_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh MLOPS_HOME (sqlite MLflow store, artifacts, reports) and fresh settings."""
    home = tmp_path / "mlops"
    home.mkdir()
    monkeypatch.setenv("MLOPS_HOME", str(home))
    for name in (
        "MLFLOW_TRACKING_URI",
        "MLOPS_REPORTS_DIR",
        "MLOPS_DATA_SOURCE",
        "MLOPS_TARGET",
        "MLOPS_TASK",
        "MLOPS_API_KEY",
        "MLOPS_SEARCH_SPACE",
        "MLOPS_TRIALS",
    ):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture
def mongo_db(mongo_server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database name of this test's own on the session's MongoDB-wire server, empty.

    nx-27017 keeps every database name in one SQLite namespace (a document inserted through
    database "a" is found through "b"), so a fresh name alone does not isolate tests: the
    collections are emptied first. Real MongoDB isolates by name; this costs it nothing.
    """
    from pymongo import MongoClient

    from lifecycle.store import FEEDBACK, PREDICTIONS, REPORTS

    name = f"t{uuid.uuid4().hex[:10]}"
    client = MongoClient(mongo_server.uri, serverSelectionTimeoutMS=5000)
    for collection in (PREDICTIONS, FEEDBACK, REPORTS):
        client[name][collection].delete_many({})
    client.close()
    monkeypatch.setenv("MONGO_URI", mongo_server.uri)
    monkeypatch.setenv("MLOPS_MONGO_DB", name)
    get_settings.cache_clear()
    return name
