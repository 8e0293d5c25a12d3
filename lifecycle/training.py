"""Training: split, hyperopt TPE search over XGBoost (every trial a nested MLflow run), refit,
log + register the best model, and hand it to the quality gate.

Each step is a plain function, so the Prefect flow (flows/train.py) wraps them as tasks and
`train()` runs them in one call for scripts, tests and benchmarks.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from hyperopt import STATUS_OK, Trials, fmin, tpe
from mlflow.entities import Metric, Param, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from sklearn.model_selection import train_test_split

from lifecycle import registry, tracking
from lifecycle.data import Dataset, load_dataset
from lifecycle.evaluation import compute_metrics, loss
from lifecycle.model import FeatureSpec, Predictor
from lifecycle.search_space import SearchSpace, get_space
from lifecycle.settings import Settings, Task, get_settings

log = logging.getLogger(__name__)

Progress = Callable[[int, int, float | None], None]
REFERENCE_ROWS = 5000


@dataclass
class Splits:
    """Train / validation / test frames (features + target), stratified and seeded."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame


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


@dataclass
class Candidate:
    """The refit best model, logged and registered."""

    version: str
    run_id: str
    test_metrics: dict[str, float]
    predictor: Predictor
    register_seconds: float


@dataclass
class TrainResult:
    version: str
    run_id: str
    promoted: bool
    alias: str
    reason: str
    metric: str
    test_metrics: dict[str, float]
    champion_version: str | None
    champion_value: float | None
    search: SearchResult
    register_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


# -- steps ------------------------------------------------------------------------------------
def split_dataset(dataset: Dataset, seed: int) -> Splits:
    """70 / 15 / 15 split; stratified on the label for classification."""
    frame = dataset.frame
    strat = frame[dataset.target] if dataset.task != "regression" else None
    train, rest = train_test_split(frame, test_size=0.30, random_state=seed, stratify=strat)
    strat_rest = rest[dataset.target] if strat is not None else None
    val, test = train_test_split(rest, test_size=0.50, random_state=seed, stratify=strat_rest)
    return Splits(*(part.reset_index(drop=True) for part in (train, val, test)))


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


def _labels(spec: FeatureSpec, frame: pd.DataFrame) -> np.ndarray:
    y = frame[spec.target]
    if spec.task == "regression":
        return y.to_numpy(dtype=np.float32)
    index = {c: i for i, c in enumerate(spec.classes)}
    return np.array(
        [index[v.item() if isinstance(v, np.generic) else v] for v in y], dtype=np.int32
    )


def _dmatrix(spec: FeatureSpec, frame: pd.DataFrame, with_label: bool = True) -> Any:
    import xgboost as xgb

    return xgb.DMatrix(
        spec.encode_frame(frame),
        label=_labels(spec, frame) if with_label else None,
        feature_names=spec.names,
        feature_types=[f.xgb_type for f in spec.features],
        enable_categorical=True,
    )


def start_run(settings: Settings, dataset: Dataset, space: SearchSpace, trials: int) -> str:
    """Open the parent run (one per training flow run) and log what defines it."""
    tracking.configure(settings)
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


def search(
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
    import xgboost as xgb

    mlflow_client = mlflow.MlflowClient()
    experiment_id = mlflow_client.get_run(run_id).info.experiment_id
    dtrain = _dmatrix(spec, splits.train)
    dval = _dmatrix(spec, splits.val)
    val_matrix = spec.encode_frame(splits.val)
    y_val = splits.val[spec.target].to_numpy()
    fixed = objective_params(spec.task, len(spec.classes), seed)
    results: list[TrialResult] = []
    started = time.perf_counter()

    def objective(sampled: dict[str, Any]) -> dict[str, Any]:
        params = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in sampled.items()}
        t0 = time.perf_counter()
        booster = xgb.train(
            {**fixed, **params},
            dtrain,
            num_boost_round=space.num_boost_round,
            evals=[(dval, "val")],
            early_stopping_rounds=space.early_stopping_rounds,
            verbose_eval=False,
        )
        fit_seconds = time.perf_counter() - t0
        best_iteration = int(booster.best_iteration)
        raw = booster.inplace_predict(val_matrix, iteration_range=(0, best_iteration + 1))
        labels, proba = spec.decode(raw)
        scores = compute_metrics(spec.task, y_val, labels, proba, spec.classes)
        number = len(results)
        run = mlflow_client.create_run(
            experiment_id,
            tags={MLFLOW_PARENT_RUN_ID: run_id, MLFLOW_RUN_NAME: f"trial-{number:03d}"},
        )
        now = int(time.time() * 1000)
        # One batched write per trial: per-call logging would dominate small fits.
        mlflow_client.log_batch(
            run.info.run_id,
            metrics=[Metric(f"val_{k}", v, now, 0) for k, v in scores.items()]
            + [Metric("fit_seconds", fit_seconds, now, 0)],
            params=[Param(k, str(v)) for k, v in params.items()]
            + [Param("best_iteration", str(best_iteration))],
            tags=[RunTag("trial", str(number))],
        )
        mlflow_client.set_terminated(run.info.run_id)
        results.append(
            TrialResult(number, params, scores, best_iteration, fit_seconds, run.info.run_id)
        )
        if progress is not None:
            best = min(results, key=lambda t: loss(metric, t.metrics[metric]))
            progress(len(results), trials, best.metrics[metric])
        return {"loss": loss(metric, scores[metric]), "status": STATUS_OK}

    fmin(
        objective,
        space.space,
        algo=tpe.suggest,
        max_evals=trials,
        trials=Trials(),
        rstate=np.random.default_rng(seed),
        show_progressbar=False,
    )
    return SearchResult(metric, results, time.perf_counter() - started, space.name)


def refit(splits: Splits, spec: FeatureSpec, best: TrialResult, seed: int) -> Predictor:
    """Refit the best configuration on train + validation for its early-stopped round count."""
    import xgboost as xgb

    full = pd.concat([splits.train, splits.val], ignore_index=True)
    booster = xgb.train(
        {**objective_params(spec.task, len(spec.classes), seed), **best.params},
        _dmatrix(spec, full),
        num_boost_round=best.best_iteration + 1,
    )
    return Predictor(booster, spec)


def evaluate(predictor: Predictor, frame: pd.DataFrame) -> dict[str, float]:
    labels, proba = predictor.predict_frame(frame)
    spec = predictor.spec
    return compute_metrics(spec.task, frame[spec.target].to_numpy(), labels, proba, spec.classes)


def log_and_register(
    run_id: str,
    splits: Splits,
    predictor: Predictor,
    result: SearchResult,
    settings: Settings,
    dataset: Dataset,
    seed: int,
) -> Candidate:
    """Log the refit model (signature + input example) with its artifacts and register it."""
    from mlflow.models import infer_signature

    from lifecycle.pyfunc import LifecycleModel

    t0 = time.perf_counter()
    spec = predictor.spec
    test_metrics = evaluate(predictor, splits.test)
    best = result.best
    features = splits.train.drop(columns=[spec.target])
    example = features.head(5)
    example_labels, _ = predictor.predict_frame(example)
    signature = infer_signature(example, np.asarray(example_labels))
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_id=run_id):
        tmp_path = Path(tmp)
        model_dir = tmp_path / "model"
        predictor.save(model_dir)
        mlflow.log_params({k: v for k, v in best.params.items()})
        mlflow.log_params({"best_trial": best.number, "num_boost_round": best.best_iteration + 1})
        mlflow.log_metrics({f"test_{k}": v for k, v in test_metrics.items()})
        mlflow.log_metrics({f"val_{k}": v for k, v in best.metrics.items()})
        mlflow.log_metrics(
            {"search_wall_seconds": result.wall_seconds, "search_fit_seconds": result.fit_seconds}
        )
        mlflow.log_dict(dataset.fingerprint(), "data/fingerprint.json")
        mlflow.log_dict(spec.to_dict(), "data/feature_spec.json")
        _log_plots(predictor, splits.test, tmp_path)
        reference = _reference(splits.train, predictor, seed)
        reference.to_parquet(tmp_path / "reference.parquet", index=False)
        mlflow.log_artifact(str(tmp_path / "reference.parquet"), artifact_path="reference")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=LifecycleModel(),
            artifacts={
                "booster": str(model_dir / "booster.ubj"),
                "spec": str(model_dir / "feature_spec.json"),
            },
            signature=signature,
            input_example=example,
            # Given explicitly: inferring requirements would load the model in a subprocess.
            pip_requirements=_requirements(),
        )
        version = mlflow.register_model(
            info.model_uri,
            settings.model_name,
            tags=_version_tags(spec, settings, test_metrics, dataset, run_id, result),
        )
    return Candidate(
        str(version.version), run_id, test_metrics, predictor, time.perf_counter() - t0
    )


def gate(candidate: Candidate, splits: Splits, settings: Settings) -> registry.GateDecision:
    """Offline A/B: candidate and current champion on the same fresh test split."""
    spec = candidate.predictor.spec
    metric = settings.primary_metric(spec.task)
    champion = registry.version_by_alias(registry.CHAMPION, settings)
    champion_value: float | None = None
    champion_version = str(champion.version) if champion is not None else None
    if champion_version is not None and champion_version != candidate.version:
        try:
            _, champ = registry.load_predictor(champion_version, settings)
            champion_value = evaluate(champ, splits.test).get(metric)
        except Exception as exc:  # any failure means "cannot compare"; the reason is logged
            log.warning("champion v%s cannot score this data: %s", champion_version, exc)
    decision = registry.decide(
        metric,
        spec.task,
        candidate.test_metrics[metric],
        champion_value,
        settings,
        champion_version,
    )
    registry.apply_decision(candidate.version, decision, settings)
    client = registry.client(settings)
    client.set_model_version_tag(settings.model_name, candidate.version, "gate", decision.reason)
    with mlflow.start_run(run_id=candidate.run_id):
        mlflow.set_tags({"gate_promoted": str(decision.promoted), "gate_reason": decision.reason})
    return decision


# -- one call ---------------------------------------------------------------------------------
def train(
    settings: Settings | None = None,
    *,
    trials: int | None = None,
    source: str | None = None,
    space: str | None = None,
    seed: int | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Load → split → search → register → gate, without Prefect (scripts, tests, benchmarks)."""
    settings = settings or get_settings()
    trials = trials or settings.trials
    seed = settings.seed if seed is None else seed
    search_space = get_space(space or settings.search_space)
    dataset = load_dataset(
        source or settings.data_source, settings.target, settings.task, settings.s3_block
    )
    splits = split_dataset(dataset, seed)
    spec = FeatureSpec.infer(dataset.frame, dataset.target, dataset.task)
    metric = settings.primary_metric(dataset.task)
    run_id = start_run(settings, dataset, search_space, trials)
    result = search(run_id, splits, spec, search_space, trials, metric, seed, progress)
    predictor = refit(splits, spec, result.best, seed)
    candidate = log_and_register(run_id, splits, predictor, result, settings, dataset, seed)
    decision = gate(candidate, splits, settings)
    return summarize(candidate, decision, result, metric)


def summarize(
    candidate: Candidate, decision: registry.GateDecision, result: SearchResult, metric: str
) -> TrainResult:
    return TrainResult(
        version=candidate.version,
        run_id=candidate.run_id,
        promoted=decision.promoted,
        alias=decision.alias,
        reason=decision.reason,
        metric=metric,
        test_metrics=candidate.test_metrics,
        champion_version=decision.champion_version,
        champion_value=decision.champion_value,
        search=result,
        register_seconds=candidate.register_seconds,
    )


def report_markdown(result: TrainResult, top: int = 5) -> str:
    """The Prefect artifact / CLI summary: top trials, chosen params, test metrics, gate."""
    top = min(top, len(result.search.trials))
    lines = [
        f"# Training run `{result.run_id}`",
        "",
        f"**Model version {result.version}**: "
        + ("promoted to `champion`" if result.promoted else "kept as `challenger`")
        + f" ({result.reason}).",
        "",
        "## Test metrics",
        "",
        "| metric | value |",
        "| --- | --- |",
        *[f"| {k} | {v:.4f} |" for k, v in result.test_metrics.items()],
        "",
        f"## Top {top} of {len(result.search.trials)} trials (by validation {result.metric})",
        "",
        "| trial | " + " | ".join(f"val {m}" for m in result.search.best.metrics) + " | params |",
        "| --- | " + " | ".join("---" for _ in result.search.best.metrics) + " | --- |",
    ]
    ranked = sorted(
        result.search.trials, key=lambda t: loss(result.metric, t.metrics[result.metric])
    )
    for t in ranked[:top]:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in t.params.items())
        values = " | ".join(f"{v:.4f}" for v in t.metrics.values())
        lines.append(f"| {t.number} | {values} | {params} |")
    lines += [
        "",
        "## Chosen parameters",
        "",
        *[f"- `{k}` = {_fmt(v)}" for k, v in result.search.best.params.items()],
        "",
        f"Search: {result.search.wall_seconds:.1f} s wall, "
        f"{result.search.fit_seconds:.1f} s in XGBoost fit; log + register "
        f"{result.register_seconds:.1f} s.",
    ]
    return "\n".join(lines)


# -- helpers ----------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [
        f"{name}=={version(name)}"
        for name in ("mlflow", "xgboost", "pandas", "numpy", "pyarrow", "scikit-learn")
    ]


def _version_tags(
    spec: FeatureSpec,
    settings: Settings,
    test_metrics: dict[str, float],
    dataset: Dataset,
    run_id: str,
    result: SearchResult,
) -> dict[str, str]:
    return {
        "task": spec.task,
        "primary_metric": settings.primary_metric(spec.task),
        **{k: f"{v:.6g}" for k, v in test_metrics.items()},
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_fingerprint": dataset.fingerprint()["hash"],
        "data_source": dataset.source,
        "train_run_id": run_id,
        "search_space": result.space,
        "trials": str(len(result.trials)),
    }


def _reference(train: pd.DataFrame, predictor: Predictor, seed: int) -> pd.DataFrame:
    """A training sample with the target and the model's predictions (the drift reference)."""
    sample = train.sample(n=min(REFERENCE_ROWS, len(train)), random_state=seed)
    sample = sample.reset_index(drop=True)
    labels, _ = predictor.predict_frame(sample)
    return sample.assign(**{registry.PREDICTION_COLUMN: labels})


def _log_plots(predictor: Predictor, test: pd.DataFrame, tmp: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    gain = predictor.booster.get_score(importance_type="gain")
    top = sorted(gain.items(), key=lambda kv: kv[1])[-20:]
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.3 * len(top))))
    ax.barh([k for k, _ in top], [v for _, v in top], color="#4c72b0")
    ax.set_xlabel("total gain")
    ax.set_title("Feature importance")
    fig.tight_layout()
    fig.savefig(tmp / "feature_importance.png", dpi=100)
    plt.close(fig)
    mlflow.log_artifact(str(tmp / "feature_importance.png"), artifact_path="plots")
    mlflow.log_dict({k: float(v) for k, v in gain.items()}, "plots/feature_importance.json")
    if predictor.spec.is_classifier:
        from sklearn.metrics import ConfusionMatrixDisplay

        labels, _ = predictor.predict_frame(test)
        fig, ax = plt.subplots(figsize=(5, 4.5))
        ConfusionMatrixDisplay.from_predictions(
            test[predictor.spec.target].to_numpy(), np.asarray(labels), ax=ax, colorbar=False
        )
        ax.set_title("Confusion matrix (test split)")
        fig.tight_layout()
        fig.savefig(tmp / "confusion_matrix.png", dpi=100)
        plt.close(fig)
        mlflow.log_artifact(str(tmp / "confusion_matrix.png"), artifact_path="plots")
