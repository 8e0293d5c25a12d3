"""Shared fixtures. Server fixtures live in tests/fixtures/ (one module per area)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lifecycle.core.settings import get_settings
from tests.fixtures.training import seed_mlflow_store

pytest_plugins = [
    "tests.fixtures.servers",
    "tests.fixtures.prefect",
    "tests.fixtures.training",
    "tests.fixtures.serving",
    "tests.fixtures.reporting",
    "tests.fixtures.monitoring",
    "tests.fixtures.operations",
    "tests.fixtures.kinesis",
    "tests.fixtures.dask",
    "tests.fixtures.estimates",
]
_PREFECT_HOME = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """Before any test module imports Prefect: each xdist worker (and a plain run) gets its own
    PREFECT_HOME, which every `mlops` child inherits. Otherwise the ephemeral servers of all
    workers' CLI runs share ~/.prefect/prefect.db (sqlite locks, and a developer's profile)."""
    worker = getattr(config, "workerinput", {}).get("workerid", "main")
    home = tempfile.mkdtemp(prefix=f"lifecycle-tests-prefect-{worker}-")
    config.stash[_PREFECT_HOME] = home
    os.environ["PREFECT_HOME"] = home
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"  # no telemetry calls from tests
    # Prefect's default of 20 s for an ephemeral server to answer is what one idle core needs;
    # under `make test` two workers share two cores with servers of their own.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def pytest_unconfigure(config: pytest.Config) -> None:
    home = config.stash.get(_PREFECT_HOME, None)
    if home:
        shutil.rmtree(home, ignore_errors=True)


# The heaviest modules first (`pytest --durations`, summed per module): xdist hands out work in
# collection order, so a long module handed out last would leave one core idle at the end. Only
# the order depends on this list, never a result.
HEAVY_FIRST = (
    "test_stack",
    "test_deployments",
    "test_training",
    "test_operations",
    "test_serving_prediction_log",
)


def _shares_a_module_fixture(item: pytest.Item) -> bool:
    fixtures = getattr(item, "_fixtureinfo", None)
    if fixtures is None:
        return False
    return any(
        definition.scope in ("module", "class", "package")
        for definitions in fixtures.name2fixturedefs.values()
        for definition in definitions
    )


def _rank(item: pytest.Item) -> tuple[int, int]:
    name = item.path.stem
    if name in HEAVY_FIRST:
        return 0, HEAVY_FIRST.index(name)
    return (1 if "integration" in item.path.parts else 2), 0


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """For `make test`'s `--dist loadgroup`: a module whose tests share a module-scoped fixture
    (a trained store, a server) runs on one worker, so the fixture is built once; every other
    test is handed out on its own. Heavy modules go first (HEAVY_FIRST), unit tests last, to
    fill the gaps; modules stay contiguous (a stable sort)."""
    for item in items:
        if _shares_a_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.path.stem))
    items.sort(key=_rank)


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
    home = seed_mlflow_store(tmp_path / "mlops")
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
    """A database on this test's own MongoDB-wire server, set as MONGO_URI and MLOPS_MONGO_DB.

    Its own server, not only its own name: nx-27017 keeps one namespace for all database names.
    """
    name = f"t{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("MONGO_URI", mongo_server.uri)
    monkeypatch.setenv("MLOPS_MONGO_DB", name)
    get_settings.cache_clear()
    return name
