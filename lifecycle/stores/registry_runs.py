"""The training runs in MLflow's tracking store, through the registry's client: the experiment a
run belongs to, the latest training run (`mlops status`), and the nested runs a search's trials
log under their parent run (one batched write per trial)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from lifecycle.core.settings import Settings
from lifecycle.stores.registry import client

if TYPE_CHECKING:
    from mlflow.entities import Run

# Training (parent) runs are named `train-<UTC stamp>` (lifecycle.training.search.start_run).
TRAIN_RUN_PREFIX = "train-"


def experiment_of(run_id: str, settings: Settings) -> str:
    """The id of the experiment run `run_id` belongs to."""
    return client(settings).get_run(run_id).info.experiment_id


def latest_training_run(settings: Settings) -> Run | None:
    """The most recently started active training run of the settings' experiment, if any."""
    import mlflow

    mlflow_client = client(settings)
    experiment = mlflow_client.get_experiment_by_name(settings.experiment)
    if experiment is None:
        return None
    runs = mlflow_client.search_runs(
        [experiment.experiment_id],
        filter_string=f"attributes.run_name LIKE '{TRAIN_RUN_PREFIX}%'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        run_view_type=mlflow.entities.ViewType.ACTIVE_ONLY,
    )
    return runs[0] if runs else None


class NestedRuns:
    """Where one search's trials log their runs: a client, the parent run and its experiment.

    Opened once per local search, and by each trial on a Dask worker (the flow sends the trial
    the experiment id, not a client)."""

    def __init__(
        self, settings: Settings, parent_run_id: str, experiment_id: str | None = None
    ) -> None:
        self.client: Any = client(settings)
        self.parent_run_id = parent_run_id
        self.experiment_id = experiment_id or self.client.get_run(parent_run_id).info.experiment_id

    def log(
        self,
        name: str,
        metrics: dict[str, float],
        params: dict[str, Any],
        tags: dict[str, str],
    ) -> str:
        """One finished nested run named `name` with its metrics, params and tags; its run id.
        One batched write: per-call logging would dominate small fits."""
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

        run = self.client.create_run(
            self.experiment_id,
            tags={MLFLOW_PARENT_RUN_ID: self.parent_run_id, MLFLOW_RUN_NAME: name},
        )
        now = int(time.time() * 1000)
        self.client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
            params=[Param(k, str(v)) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        self.client.set_terminated(run.info.run_id)
        return run.info.run_id
