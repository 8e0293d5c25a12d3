"""The hyperparameter search: hyperopt TPE over an XGBoost space, every trial a nested MLflow run
with its params and validation metrics (trials log no model: cost)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import xgboost as xgb
from hyperopt import STATUS_OK, Trials, fmin, tpe
from mlflow.entities import Metric, Param, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from lifecycle import registry
from lifecycle.data import Dataset
from lifecycle.evaluation import compute_metrics, loss
from lifecycle.model import FeatureSpec
from lifecycle.search_space import SearchSpace
from lifecycle.settings import Settings, Task
from lifecycle.splits import Splits

Progress = Callable[[int, int, float | None], None]


@dataclass
class TrialResult:
    number: int
    params: dict[str, Any]
    metrics: dict[str, float]
    best_iteration: int
    fit_seconds: float
    run_id: str


@dataclass
class SearchResult:
    metric: str
    trials: list[TrialResult]
    wall_seconds: float
    space: str

    @property
    def fit_seconds(self) -> float:
        return sum(t.fit_seconds for t in self.trials)

    @property
    def best(self) -> TrialResult:
        return min(self.trials, key=lambda t: loss(self.metric, t.metrics[self.metric]))


def objective_params(task: Task, n_classes: int, seed: int) -> dict[str, Any]:
    base = {"tree_method": "hist", "seed": seed, "max_cat_to_onehot": 1}
    if task == "regression":
        return {**base, "objective": "reg:squarederror", "eval_metric": "rmse"}
    if task == "binary":
        return {**base, "objective": "binary:logistic", "eval_metric": "logloss"}
    return {
        **base,
        "objective": "multi:softprob",
        "eval_metric": "mlogloss",
        "num_class": n_classes,
    }


def labels(spec: FeatureSpec, frame: pd.DataFrame) -> np.ndarray:
    y = frame[spec.target]
    if spec.task == "regression":
        return y.to_numpy(dtype=np.float32)
    index = {c: i for i, c in enumerate(spec.classes)}
    return np.array(
        [index[v.item() if isinstance(v, np.generic) else v] for v in y], dtype=np.int32
    )


def dmatrix(spec: FeatureSpec, frame: pd.DataFrame, with_label: bool = True) -> Any:
    return xgb.DMatrix(
        spec.encode_frame(frame),
        label=labels(spec, frame) if with_label else None,
        feature_names=spec.names,
        feature_types=[f.xgb_type for f in spec.features],
        enable_categorical=True,
    )


def start_run(settings: Settings, dataset: Dataset, space: SearchSpace, trials: int) -> str:
    """Open the parent run (one per training flow run) and log what defines it."""
    registry.configure(settings)
    fp = dataset.fingerprint()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    with mlflow.start_run(run_name=f"train-{stamp}") as run:
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


class _Objective:
    """One hyperopt trial: fit with early stopping on validation, score, log a nested run."""

    def __init__(
        self,
        client: Any,
        run_id: str,
        splits: Splits,
        spec: FeatureSpec,
        space: SearchSpace,
        metric: str,
        seed: int,
    ) -> None:
        self.client, self.run_id, self.spec, self.space, self.metric = (
            client,
            run_id,
            spec,
            space,
            metric,
        )
        self.experiment_id = client.get_run(run_id).info.experiment_id
        # Built once per search, not per trial: building them costs as much as a small fit.
        self.dtrain = dmatrix(spec, splits.train)
        self.dval = dmatrix(spec, splits.val)
        self.val_matrix = spec.encode_frame(splits.val)
        self.y_val = splits.val[spec.target].to_numpy()
        self.fixed = objective_params(spec.task, len(spec.classes), seed)
        self.results: list[TrialResult] = []

    def __call__(self, sampled: dict[str, Any]) -> dict[str, Any]:
        params = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in sampled.items()}
        t0 = time.perf_counter()
        booster = xgb.train(
            {**self.fixed, **params},
            self.dtrain,
            num_boost_round=self.space.num_boost_round,
            evals=[(self.dval, "val")],
            early_stopping_rounds=self.space.early_stopping_rounds,
            verbose_eval=False,
        )
        fit_seconds = time.perf_counter() - t0
        best_iteration = int(booster.best_iteration)
        raw = booster.inplace_predict(self.val_matrix, iteration_range=(0, best_iteration + 1))
        labels, proba = self.spec.decode(raw)
        scores = compute_metrics(self.spec.task, self.y_val, labels, proba, self.spec.classes)
        number = len(self.results)
        trial_run = self._log(number, params, scores, best_iteration, fit_seconds)
        self.results.append(
            TrialResult(number, params, scores, best_iteration, fit_seconds, trial_run)
        )
        return {"loss": loss(self.metric, scores[self.metric]), "status": STATUS_OK}

    def _log(
        self,
        number: int,
        params: dict[str, Any],
        scores: dict[str, float],
        best_iteration: int,
        fit_seconds: float,
    ) -> str:
        run = self.client.create_run(
            self.experiment_id,
            tags={MLFLOW_PARENT_RUN_ID: self.run_id, MLFLOW_RUN_NAME: f"trial-{number:03d}"},
        )
        now = int(time.time() * 1000)
        # One batched write per trial: per-call logging would dominate small fits.
        self.client.log_batch(
            run.info.run_id,
            metrics=[Metric(f"val_{k}", v, now, 0) for k, v in scores.items()]
            + [Metric("fit_seconds", fit_seconds, now, 0)],
            params=[Param(k, str(v)) for k, v in params.items()]
            + [Param("best_iteration", str(best_iteration))],
            tags=[RunTag("trial", str(number))],
        )
        self.client.set_terminated(run.info.run_id)
        return run.info.run_id

    def best_value(self) -> float:
        return min(self.results, key=lambda t: loss(self.metric, t.metrics[self.metric])).metrics[
            self.metric
        ]


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
    """hyperopt TPE over `space`; each trial is a nested run with its params + val metrics."""
    objective = _Objective(registry.client(settings), run_id, splits, spec, space, metric, seed)

    def trial(sampled: dict[str, Any]) -> dict[str, Any]:
        outcome = objective(sampled)
        if progress is not None:
            progress(len(objective.results), trials, objective.best_value())
        return outcome

    started = time.perf_counter()
    fmin(
        trial,
        space.space,
        algo=tpe.suggest,
        max_evals=trials,
        trials=Trials(),
        rstate=np.random.default_rng(seed),
        show_progressbar=False,
    )
    return SearchResult(metric, objective.results, time.perf_counter() - started, space.name)
