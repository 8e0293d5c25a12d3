"""The hyperparameter search: hyperopt TPE over an XGBoost space, one trial after another in this
process (on a Dask cluster: flows/distributed.py), every trial a nested MLflow run of the parent
run `start_run` opens. A trial itself is in trials.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import mlflow
import numpy as np
from hyperopt import STATUS_OK, Trials, fmin, tpe

from lifecycle.core.settings import Settings
from lifecycle.data.dataset import Dataset
from lifecycle.data.splits import Splits
from lifecycle.model.evaluation import loss
from lifecycle.model.predictor import FeatureSpec
from lifecycle.stores import registry
from lifecycle.stores.registry_runs import TRAIN_RUN_PREFIX, NestedRuns
from lifecycle.training.search_space import SearchSpace
from lifecycle.training.trials import TrialData, TrialResult, best_value, release, run_trial

Progress = Callable[[int, int, float | None], None]


@dataclass
class SearchResult:
    metric: str
    trials: list[TrialResult]
    wall_seconds: float
    space: str
    # Distributed searches only: trials that did not complete (counted, not retried by TPE),
    # trials the cluster ran again after their worker was lost, and the trials in flight.
    failed: int = 0
    retried: int = 0
    parallel: int = 1
    workers: list[str] = field(default_factory=list)

    @property
    def fit_seconds(self) -> float:
        return sum(t.fit_seconds for t in self.trials)

    @property
    def best(self) -> TrialResult:
        return min(self.trials, key=lambda t: loss(self.metric, t.metrics[self.metric]))


def start_run(settings: Settings, dataset: Dataset, space: SearchSpace, trials: int) -> str:
    """Open the parent run (one per training flow run) and log what defines it."""
    registry.configure(settings)
    fp = dataset.fingerprint()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    with mlflow.start_run(run_name=f"{TRAIN_RUN_PREFIX}{stamp}") as run:
        mlflow.log_params(
            {
                "data_source": dataset.source,
                "target": dataset.target,
                "task": dataset.task,
                "search_space": space.name,
                "trials": trials,
                "data_hash": fp["hash"],
                "data_rows": fp["rows"],
                "data_columns": fp["columns"],
            }
        )
        mlflow.set_tags({"data_fingerprint": fp["hash"], "task": dataset.task})
        run_id = run.info.run_id
    return run_id


def search(
    settings: Settings,
    run_id: str,
    splits: Splits,
    spec: FeatureSpec,
    space: SearchSpace,
    trials: int,
    metric: str,
    seed: int,
    progress: Progress | None = None,
) -> SearchResult:
    """hyperopt TPE over `space`, one trial after another in this process."""
    runs = NestedRuns(settings, run_id)
    data = TrialData(
        run_id, splits, spec, space, seed, settings.trial_threads, settings.class_weight
    )
    results: list[TrialResult] = []

    def trial(sampled: dict[str, Any]) -> dict[str, Any]:
        params = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in sampled.items()}
        result = run_trial(data, params, len(results), runs)
        results.append(result)
        if progress is not None:
            progress(len(results), trials, best_value(results, metric))
        return {"loss": loss(metric, result.metrics[metric]), "status": STATUS_OK}

    started = time.perf_counter()
    try:
        fmin(
            trial,
            space.space,
            algo=tpe.suggest,
            max_evals=trials,
            trials=Trials(),
            rstate=np.random.default_rng(seed),
            show_progressbar=False,
        )
    finally:
        release(data)
    return SearchResult(metric, results, time.perf_counter() - started, space.name)
