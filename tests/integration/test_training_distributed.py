"""`train-model` with MLOPS_DASK_ADDRESS: trials as Prefect task runs on a real Dask cluster
(`dask scheduler` + 2 `dask worker` processes, 1 thread each), tracked in a real `mlflow server`
over HTTP, reported to a real Prefect server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flows.train import run_train_flow
from flows.train_summary import TrainResult
from lifecycle.core.settings import Settings
from lifecycle.core.waiting import wait_until
from lifecycle.stores import registry
from lifecycle.training.trials import TAG_WORKER, prepared_keys
from ops.local_servers import free_port
from tests.fixtures.dask import DaskCluster, MlflowServer

pytestmark = pytest.mark.integration

SOURCE = "synthetic:churn?rows=3000&seed=7"
TRIALS = 8
SEED = 11


@dataclass
class Trained:
    settings: Settings
    result: TrainResult


def _settings(mlflow_server: MlflowServer, dask_cluster: DaskCluster, tmp: Path) -> Settings:
    return Settings(
        MLOPS_HOME=str(tmp),
        MLFLOW_TRACKING_URI=mlflow_server.url,
        MLOPS_EXPERIMENT=f"distributed-{uuid.uuid4().hex[:8]}",
        MLOPS_MODEL_NAME=f"distributed-{uuid.uuid4().hex[:8]}",
        MLOPS_DASK_ADDRESS=dask_cluster.address,
        MLOPS_TRAIN_RETRIES=0,
    )


def _train(settings: Settings, trials: int = TRIALS) -> TrainResult:
    return run_train_flow(
        settings, trials=trials, data_source=SOURCE, search_space="fast", seed=SEED
    )


@pytest.fixture(scope="module")
def prefect_api(prefect_server: str) -> Iterator[str]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: prefect_server}):
        yield prefect_server


@pytest.fixture(scope="module")
def first_run(
    mlflow_server: MlflowServer,
    dask_cluster: DaskCluster,
    prefect_api: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Trained:
    settings = _settings(mlflow_server, dask_cluster, tmp_path_factory.mktemp("first"))
    return Trained(settings, _train(settings))


def _trial_runs(settings: Settings) -> list:
    """The nested (trial) runs of the settings' experiment, by name."""
    client = registry.client(settings)
    experiment = client.get_experiment_by_name(settings.experiment)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return sorted(
        (r for r in runs if "mlflow.parentRunId" in r.data.tags), key=lambda r: r.info.run_name
    )


def test_distributed_training_registers_a_champion(first_run: Trained) -> None:
    result = first_run.result
    assert result.promoted and result.alias == "champion", result.reason
    version = registry.version_by_alias("champion", first_run.settings)
    assert version is not None and str(version.version) == result.version
    assert result.search.failed == 0
    assert len(result.search.trials) == TRIALS


def test_distributed_trials_are_nested_runs_tagged_with_both_workers(
    first_run: Trained, dask_cluster: DaskCluster
) -> None:
    runs = _trial_runs(first_run.settings)
    assert [r.info.run_name for r in runs] == [f"trial-{i:03d}" for i in range(TRIALS)]
    for run in runs:
        assert run.data.tags["mlflow.parentRunId"] == first_run.result.run_id
        assert {"max_depth", "learning_rate", "best_iteration"} <= set(run.data.params)
        assert {"val_accuracy", "fit_seconds"} <= set(run.data.metrics)
    assert {r.data.tags[TAG_WORKER] for r in runs} == set(dask_cluster.worker_pids())
    assert sorted(first_run.result.search.workers) == sorted(dask_cluster.worker_pids())


def test_distributed_data_reaches_each_worker_once(
    first_run: Trained, dask_cluster: DaskCluster
) -> None:
    from distributed import Client

    # Each worker holds the search's matrices, built once from the one scattered copy.
    with Client(dask_cluster.address, timeout="10s", set_as_default=False) as client:
        # By reference to an importable function: the workers cannot import `tests`.
        held = client.run(prepared_keys)
    assert len(held) == 2
    assert all(first_run.result.run_id in keys for keys in held.values())


def _artifact(first_run: Trained) -> Any:
    """The first run's train-model-summary artifact on the Prefect server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["train-model-summary"]))
        )
    ours = [a for a in artifacts if f"`{first_run.result.run_id}`" in str(a.data)]
    assert len(ours) == 1
    return ours[0]


def test_distributed_artifact_has_the_local_shape_plus_the_failed_count(
    first_run: Trained, prefect_api: str
) -> None:
    from flows.train_summary import report_markdown

    markdown = str(_artifact(first_run).data)
    # The local run's artifact, unchanged, then one line about the cluster.
    local_part, cluster_part = markdown.split("\n\nDistributed on ", 1)
    assert local_part == report_markdown(first_run.result)
    assert f"{TRIALS} trials, 8 in flight, on 2 workers" in cluster_part  # 4 x 2 threads
    assert "**0 failed**" in cluster_part


def test_each_trial_is_a_completed_task_run_of_the_flow_run(
    first_run: Trained, prefect_api: str
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    # The trials run in the train-pipeline subflow of the train-model run the artifact is on.
    parent = FlowRunFilterParentFlowRunId(any_=[_artifact(first_run).flow_run_id])

    def trial_runs() -> dict[str, str]:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(parent_flow_run_id=parent))
        return {r.name: r.state_name for r in runs if r.name.startswith("trial-")}

    # Task run states reach the server as events, processed shortly after the run ends.
    expected = {f"trial-{i:03d}": "Completed" for i in range(TRIALS)}
    assert wait_until(trial_runs, "the trials' task runs", 60, 0.5, lambda r: r == expected)


def test_workers_keep_their_prefect_settings_and_client_between_trials(
    first_run: Trained, dask_cluster: DaskCluster
) -> None:
    from distributed import Client

    from flows import dask_runner

    ran = Counter(run.data.tags[TAG_WORKER] for run in _trial_runs(first_run.settings))
    with Client(dask_cluster.address, timeout="10s", set_as_default=False) as client:
        built = client.run(dask_runner.cache_stats)
    # Prefect rebuilds both for each task run by itself (flows/dask_runner.py): here at most one
    # per distinct settings seen, on each worker's one thread, however many trials it ran.
    for worker, stats in built.items():
        assert ran[worker] >= 2, ran
        assert 1 <= stats["settings"] <= 2 and 1 <= stats["clients"] <= 2, built


def test_distributed_same_seed_suggests_the_same_parameter_sequence(
    first_run: Trained, mlflow_server: MlflowServer, dask_cluster: DaskCluster, tmp_path: Path
) -> None:
    # Half the trials: a sequence does not depend on how long the search goes on, so the first
    # half must match the first run's (and the test costs half as much). The two runs' trials
    # finish in different orders and on different workers; the suggestions must not care.
    again = _train(_settings(mlflow_server, dask_cluster, tmp_path), trials=TRIALS // 2)
    first = [(t.number, t.params) for t in sorted(first_run.result.search.trials, key=_number)]
    second = [(t.number, t.params) for t in sorted(again.search.trials, key=_number)]
    assert second == first[: TRIALS // 2]


def _number(trial) -> int:
    return trial.number


def test_unreachable_scheduler_fails_mlops_train_fast_in_one_line(
    prefect_api: str, tmp_path: Path
) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    env = {
        **os.environ,
        "MLOPS_HOME": str(tmp_path),
        "MLOPS_DASK_ADDRESS": address,
        "PREFECT_API_URL": prefect_api,
    }
    started = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mlops"), "train", "--trials", "2", "--data", SOURCE],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.perf_counter() - started
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and address in lines[0], done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert elapsed < 15, f"took {elapsed:.1f} s"


# Last in the module: it leaves the cluster with one worker.
def test_worker_killed_mid_search_the_search_completes_and_counts_it(
    mlflow_server: MlflowServer, dask_cluster: DaskCluster, prefect_api: str, tmp_path: Path
) -> None:
    settings = _settings(mlflow_server, dask_cluster, tmp_path)
    killed: list[str] = []
    killer = threading.Thread(target=_kill_a_busy_worker, args=(dask_cluster, settings, killed))
    killer.start()
    try:
        result = _train(settings)
    finally:
        killer.join(timeout=180)
    assert killed, "no worker was busy with a trial while the search ran"
    search = result.search
    assert search.failed + search.retried >= 1
    assert len(search.trials) + search.failed == TRIALS
    assert result.version is not None


def _kill_a_busy_worker(cluster: DaskCluster, settings: Settings, killed: list[str]) -> None:
    """SIGKILL a worker that holds a trial, once two trials are logged (mid-search).

    A trial of this search takes ~0.1 s, so a snapshot of the scheduler's `processing()`
    followed by SIGKILL mostly lands between trials. Instead the worker is frozen first
    (SIGSTOP): whatever it runs now, or is handed next, it cannot finish, and the
    scheduler, which does not know it is frozen, keeps the trial on it until the SIGKILL."""
    from distributed import Client

    pids = cluster.worker_pids()
    worker = next(iter(pids))
    # 120 s: the flow run starts, loads and splits the data, and the workers import XGBoost
    # and MLflow for their first trials, all on two loaded cores.
    wait_until(
        lambda: _logged_trials(settings), "two trials logged", 120, 0.05, done=lambda n: n >= 2
    )
    os.kill(pids[worker], signal.SIGSTOP)
    try:
        with Client(cluster.address, timeout="10s", set_as_default=False) as client:
            wait_until(
                lambda: client.processing().get(worker),
                "a trial on the frozen worker",
                60,
                interval=0.05,
            )
    finally:
        os.kill(pids[worker], signal.SIGKILL)
    killed.append(worker)


def _logged_trials(settings: Settings) -> int:
    client = registry.client(settings)
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is None:
        return 0
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    return sum(1 for r in runs if "mlflow.parentRunId" in r.data.tags)
