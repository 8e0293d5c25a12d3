"""Deployments on a real Prefect server with a real process worker: apply prefect.yaml the way
`make deploy` does, check the schedules, Quick-run both deployments through the worker, and see
the drift automation start a retraining run from a real drift event."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lifecycle.core.settings import Settings
from lifecycle.core.waiting import wait_until
from lifecycle.data import synthetic
from tests.fixtures.prefect import make_deploy, start_prefect_server
from tests.fixtures.servers import MongoServer, free_port, own_mongo

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def deploy_mongo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    """This module's own MongoDB-wire server, for the deployments' runs across its tests."""
    with own_mongo(tmp_path_factory.mktemp("deploy-mongo")) as server:
        yield server


@pytest.fixture(scope="module")
def deploy_prefect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """This module's own Prefect server, stopped when the module ends: the deployments'
    schedules and the retrain-on-drift automation stay on it, and do not act on (or cost CPU
    beside) the session server the rest of this xdist worker's tests use."""
    server = start_prefect_server(tmp_path_factory.mktemp("deploy-prefect"))
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def deployed(
    deploy_prefect: str, deploy_mongo: MongoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict]:
    """`python -m deployments` (what `make deploy` runs) and a process worker on the pool."""
    mongo_server, prefect_server = deploy_mongo, deploy_prefect
    home = tmp_path_factory.mktemp("deployed") / "mlops"
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        "MLOPS_HOME": str(home),
        "MONGO_URI": mongo_server.uri,
        "MLOPS_MONGO_DB": f"deploy{uuid.uuid4().hex[:8]}",
        "MLOPS_DATA_SOURCE": "synthetic:churn?rows=2000&seed=3",
        "MLOPS_TRIALS": "3",
        "MLOPS_MIN_METRIC": "0.6",  # 2,000 rows: keep the gate's bound out of this test
        "MLOPS_SEARCH_SPACE": "fast",
        "MLOPS_RETRAIN_ON_DRIFT": "true",
        "MLOPS_DRIFT_THRESHOLD": "0.2",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_WEBSERVER_HOST": "127.0.0.1",
        "PREFECT_WORKER_WEBSERVER_PORT": str(free_port()),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    applied = make_deploy(env)
    log = (home.parent / "worker.log").open("wb")
    worker = subprocess.Popen(
        [str(BIN / "prefect"), "worker", "start", "--pool", "lifecycle"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield {"env": env, "home": home, "url": prefect_server, "applied": applied}
    finally:
        # The worker ignores the first SIGTERM (DEPENDENCIES.md): send it twice.
        for _ in range(2):
            if worker.poll() is None:
                worker.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.wait(5)
        if worker.poll() is None:
            worker.kill()
        log.close()


def _client(url: str):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    class Session:
        def __enter__(self):
            self._settings = temporary_settings({PREFECT_API_URL: url})
            self._settings.__enter__()
            self._client = get_client(sync_client=True)
            return self._client.__enter__()

        def __exit__(self, *exc):
            self._client.__exit__(*exc)
            self._settings.__exit__(*exc)

    return Session()


def _quick_run(
    url: str,
    name: str,
    timeout: float = 240,
    job_variables: dict | None = None,
    then_pause: str | None = None,
) -> object:
    """What the UI's Quick run does: a flow run from the deployment, then wait for the worker.

    `job_variables` as a Quick run's "custom run" form gives them (e.g. the run's env).
    `then_pause`: a work pool to pause once the worker has taken this run, so that it starts
    no run after this one."""
    with _client(url) as client:
        deployment = client.read_deployment_by_name(name)
        run = client.create_flow_run_from_deployment(deployment.id, job_variables=job_variables)
        if then_pause is not None:
            wait_until(
                lambda: client.read_flow_run(run.id),
                f"{name} run {run.id} taken by the worker",
                timeout,
                interval=0.2,
                done=lambda current: current.state is not None and not current.state.is_scheduled(),
            )
            _set_paused(client, then_pause, True)
        return wait_until(
            lambda: client.read_flow_run(run.id),
            f"{name} run {run.id} final",
            timeout,
            interval=1,
            done=lambda current: current.state is not None and current.state.is_final(),
        )


def _set_paused(client, pool: str, paused: bool) -> None:
    """A paused pool's worker takes no new run (the runs in progress go on)."""
    from prefect.client.schemas.actions import WorkPoolUpdate

    client.update_work_pool(pool, WorkPoolUpdate(is_paused=paused))


def test_deploy_creates_both_deployments_with_schedules(deployed: dict) -> None:
    with _client(deployed["url"]) as client:
        train = client.read_deployment_by_name("train-model/daily")
        report = client.read_deployment_by_name("build-reports/every-3h")
        pool = client.read_work_pool("lifecycle")
    assert pool.type == "process"
    assert train.work_pool_name == "lifecycle" and report.work_pool_name == "lifecycle"
    [train_schedule] = train.schedules
    assert train_schedule.schedule.cron == "0 2 * * *" and train_schedule.active
    [report_schedule] = report.schedules
    assert report_schedule.schedule.interval == timedelta(hours=3)
    assert report_schedule.schedule.anchor_date == datetime(2026, 1, 1, tzinfo=UTC)
    # the pull step points at the checkout the deploy ran from
    [step] = train.pull_steps
    assert step["prefect.deployments.steps.set_working_directory"]["directory"] == str(ROOT)
    assert "retrain-on-drift automation lifecycle-retrain-on-drift applied" in deployed["applied"]


def _drifted_traffic(settings: Settings, rows: int) -> list[dict]:
    """Drifted traffic logged by "the API": documents of the prediction log's shape."""
    from lifecycle.stores.documents import prediction_document
    from lifecycle.stores.registry_loading import load_predictor

    version, predictor = load_predictor(None, settings)
    frame = synthetic.churn_features(rows, seed=77, drift=1.5)
    labels, _ = predictor.predict_frame(frame)
    now = datetime.now(UTC)
    return [
        prediction_document(
            str(uuid.uuid4()),
            now - timedelta(minutes=30) + timedelta(seconds=i),
            settings.model_name,
            version,
            row,
            label,
        )
        for i, (row, label) in enumerate(zip(frame.to_dict("records"), labels, strict=True))
    ]


def test_quick_run_of_both_deployments_through_the_worker(deployed: dict) -> None:
    from lifecycle.stores import registry
    from lifecycle.stores.prediction_store import PredictionStore

    run = _quick_run(deployed["url"], "train-model/daily")
    assert run.state.is_completed(), run.state
    settings = Settings(
        MLOPS_HOME=str(deployed["home"]),
        MONGO_URI=deployed["env"]["MONGO_URI"],
        MLOPS_MONGO_DB=deployed["env"]["MLOPS_MONGO_DB"],
    )
    champion = registry.version_by_alias("champion", settings)
    assert champion is not None

    store = PredictionStore(settings.mongo_uri, settings.mongo_db)
    store.insert_predictions(_drifted_traffic(settings, rows=400))

    # The pool is paused once the worker has the report run: the retraining run the drift
    # automation then starts has proved its point by existing (a flow-run process for it would
    # cost ~20 s of CPU, only to be cancelled).
    report_run = _quick_run(deployed["url"], "build-reports/every-3h", then_pause="lifecycle")
    try:
        assert report_run.state.is_completed(), report_run.state
        [summary] = store.list_reports(settings.model_name)
        assert summary["rows"] == 400 and summary["drift_share"] > 0.2
        assert Path(summary["html_path"]).is_file()
        assert (settings.reports_dir / "index.html").is_file()
        store.close()
        _drift_starts_a_retraining_run(deployed["url"])
    finally:
        with _client(deployed["url"]) as client:
            _set_paused(client, "lifecycle", False)


def _drift_starts_a_retraining_run(url: str) -> None:
    """The report emitted lifecycle.drift.detected; the automation runs train-model/daily."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    with _client(url) as client:
        # Automations are evaluated within seconds (DEPENDENCIES.md: 2 s measured); 60 s leaves
        # room for a loaded 2-core machine.
        runs = wait_until(
            lambda: client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["daily"]))
            ),
            "drift event starts a second train-model/daily run",
            60,
            interval=1,
            done=lambda found: len(found) >= 2,
        )
        assert len(runs) >= 2
        _cancel_unfinished(client, runs)


def _cancel_unfinished(client, runs: list) -> None:
    """Cancel the retraining run the automation started (scheduled on the paused pool, or
    running should the worker have taken it first), so that it takes no CPU from the tests
    after this one."""
    from prefect.states import Cancelled, Cancelling

    for run in runs:
        if run.state is None or run.state.is_final():
            continue
        # A running flow is stopped by the worker on Cancelling; a scheduled one never starts.
        state = Cancelling() if run.state.is_running() else Cancelled()
        client.set_flow_run_state(run.id, state, force=True)


def _pipeline_runs(url: str, parent: object) -> list:
    """The `train-pipeline` subflow runs of a `train-model` run."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    with _client(url) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id])
            )
        )


def test_train_timeout_and_retries_settings_govern_a_deployment_run(deployed: dict) -> None:
    # MLOPS_TRAIN_TIMEOUT_SECONDS=5 and MLOPS_TRAIN_RETRIES=2, read at run time by the worker's
    # flow run. 400 trials take minutes, so the first attempt of the pipeline and each of its two
    # retries is stopped by the timeout, and the deployment's run ends TimedOut. One run shows
    # both settings: a run of each would cost another flow-run process (~20 s of CPU).
    env = {
        "MLOPS_TRAIN_TIMEOUT_SECONDS": "5",
        "MLOPS_TRIALS": "400",
        "MLOPS_TRAIN_RETRIES": "2",
        "MLOPS_TRAIN_RETRY_DELAY_SECONDS": "0",
    }
    run = _quick_run(deployed["url"], "train-model/daily", timeout=300, job_variables={"env": env})
    assert run.state.type.value == "FAILED" and run.state.name == "TimedOut", run.state
    [pipeline] = _pipeline_runs(deployed["url"], run)
    assert pipeline.run_count == 3, pipeline  # the first attempt and two retries
    assert pipeline.state.name == "TimedOut", pipeline.state
    took = (pipeline.end_time - pipeline.start_time).total_seconds()
    trials = _trial_runs_since(deployed, pipeline.start_time)
    # Stopped by the timeout each time, not by finishing: far fewer than 3 x 400 trials logged,
    # in 3 x 5 s plus the time to unwind and report states (seconds; up to a minute on a loaded
    # 2-core machine).
    assert trials < 400 and 15 <= took < 120, (trials, took)


def _trial_runs_since(deployed: dict, start: datetime) -> int:
    from lifecycle.stores import registry

    settings = Settings(MLOPS_HOME=str(deployed["home"]))
    client = registry.client(settings)
    experiment = client.get_experiment_by_name(settings.experiment)
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"attributes.start_time >= {int(start.timestamp() * 1000)}",
        max_results=1000,
    )
    return sum(1 for run in runs if "trial" in run.data.tags)
