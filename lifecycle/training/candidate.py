"""Training after the search: refit the best configuration, evaluate it on test, log it with its
signature, input example, plots and drift reference, and register it: the `Candidate`.

The Prefect flow (flows/train.py) composes these steps with the split, the search and the gate;
it is the only place the steps are sequenced, and it summarises the run (flows/train_summary.py).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from lifecycle.core.settings import Settings
from lifecycle.data.dataset import Dataset
from lifecycle.data.splits import Splits
from lifecycle.model.estimate import Calibration, CalibrationError, fit_calibration
from lifecycle.model.evaluation import evaluate
from lifecycle.model.predictor import FeatureSpec, Predictor
from lifecycle.stores import registry
from lifecycle.training.matrices import dmatrix, objective_params, positive_weight
from lifecycle.training.search import SearchResult
from lifecycle.training.trials import TrialResult

REFERENCE_ROWS = 5000


@dataclass
class Candidate:
    """The refit best model, logged and registered."""

    version: str
    run_id: str
    test_metrics: dict[str, float]
    predictor: Predictor
    register_seconds: float


def refit(
    splits: Splits, spec: FeatureSpec, best: TrialResult, seed: int, class_weight: str = "none"
) -> Predictor:
    """Refit the best configuration on train + validation for its early-stopped round count."""
    import xgboost as xgb

    full = pd.concat([splits.train, splits.val], ignore_index=True)
    weight = positive_weight(spec, full, class_weight)
    booster = xgb.train(
        {**objective_params(spec.task, len(spec.classes), seed, weight), **best.params},
        dmatrix(spec, full),
        num_boost_round=best.best_iteration + 1,
    )
    return Predictor(booster, spec)


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

    from lifecycle.model.pyfunc import LifecycleModel

    t0 = time.perf_counter()
    spec = predictor.spec
    test_metrics = evaluate(predictor, splits.test)
    features = splits.train.drop(columns=[spec.target])
    example = features.head(5)
    example_labels, _ = predictor.predict_frame(example)
    signature = infer_signature(example, np.asarray(example_labels))
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_id=run_id):
        model_dir = Path(tmp) / "model"
        predictor.save(model_dir)
        _log_evidence(splits, predictor, result, dataset, test_metrics, seed, Path(tmp))
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
        tags = _version_tags(spec, settings, test_metrics, dataset, run_id, result)
        version = registry.register(info.model_uri, tags, settings)
    return Candidate(version, run_id, test_metrics, predictor, time.perf_counter() - t0)


def _log_evidence(
    splits: Splits,
    predictor: Predictor,
    result: SearchResult,
    dataset: Dataset,
    test_metrics: dict[str, float],
    seed: int,
    tmp: Path,
) -> None:
    """What the parent run holds besides the model: best params, metrics, the data's
    fingerprint and feature spec, plots, and the drift reference."""
    best = result.best
    mlflow.log_params({k: v for k, v in best.params.items()})
    mlflow.log_params({"best_trial": best.number, "num_boost_round": best.best_iteration + 1})
    mlflow.log_metrics({f"test_{k}": v for k, v in test_metrics.items()})
    mlflow.log_metrics({f"val_{k}": v for k, v in best.metrics.items()})
    mlflow.log_metrics(
        {"search_wall_seconds": result.wall_seconds, "search_fit_seconds": result.fit_seconds}
    )
    mlflow.log_dict(dataset.fingerprint(), "data/fingerprint.json")
    mlflow.log_dict(predictor.spec.to_dict(), registry.SPEC_PATH)
    mlflow.log_dict({"prediction_ids": list(dataset.prediction_ids)}, registry.PRODUCTION_IDS_PATH)
    calibration = calibrate(predictor, splits.test)
    if calibration is not None:
        mlflow.log_dict(calibration.to_dict(), registry.CALIBRATION_PATH)
    _log_plots(predictor, splits.test)
    folder, name = registry.REFERENCE_PATH.split("/")
    _reference(splits.train, predictor, seed).to_parquet(tmp / name, index=False)
    mlflow.log_artifact(str(tmp / name), artifact_path=folder)


def calibrate(predictor: Predictor, held_out: pd.DataFrame) -> Calibration | None:
    """Isotonic calibration of a classifier's probabilities, for the label-free estimate.

    Fitted on the test split: the registered model is refit on train + validation, so the
    validation rows are in-sample for it and their probabilities over-confident; the test rows
    are the ones it never saw. None for regression, or when too few rows are held out."""
    if not predictor.spec.is_classifier:
        return None
    _, proba = predictor.predict_frame(held_out)
    try:
        return fit_calibration(
            proba, held_out[predictor.spec.target].tolist(), predictor.spec.classes
        )
    except CalibrationError:
        return None


# -- helpers ----------------------------------------------------------------------------------
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
        registry.TAG_TASK: spec.task,
        registry.TAG_PRIMARY_METRIC: settings.primary_metric(spec.task),
        **{k: f"{v:.6g}" for k, v in test_metrics.items()},
        registry.TAG_TRAINED_AT: datetime.now(UTC).isoformat(timespec="seconds"),
        registry.TAG_DATA_FINGERPRINT: dataset.fingerprint()["hash"],
        "data_source": dataset.source,
        registry.TAG_TRAIN_RUN_ID: run_id,
        "search_space": result.space,
        "trials": str(len(result.trials)),
    }


def _reference(train: pd.DataFrame, predictor: Predictor, seed: int) -> pd.DataFrame:
    """A training sample with the target and the model's predictions (the drift reference)."""
    sample = train.sample(n=min(REFERENCE_ROWS, len(train)), random_state=seed)
    sample = sample.reset_index(drop=True)
    labels, _ = predictor.predict_frame(sample)
    return sample.assign(**{registry.PREDICTION_COLUMN: labels})


def _log_plots(predictor: Predictor, test: pd.DataFrame) -> None:
    """Feature importance (gain) and, for classifiers, the test confusion matrix, as run plots."""
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
    mlflow.log_figure(fig, "plots/feature_importance.png")
    plt.close(fig)
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
        mlflow.log_figure(fig, "plots/confusion_matrix.png")
        plt.close(fig)
