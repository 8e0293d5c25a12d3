"""Registry conventions: the aliases `champion` / `challenger` / `previous`, the quality gate, and
hand promotion and rollback. Only aliases move; versions are never edited after registration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from lifecycle.errors import RegistryError
from lifecycle.evaluation import is_better_or_equal
from lifecycle.settings import LOWER_IS_BETTER, Settings, Task, get_settings

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous"
REFERENCE_PATH = "reference/reference.parquet"
PREDICTION_COLUMN = "prediction"


def client(settings: Settings | None = None) -> MlflowClient:
    """An MlflowClient on the settings' tracking + registry URI."""
    settings = settings or get_settings()
    return MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)


def version_by_alias(alias: str, settings: Settings | None = None) -> ModelVersion | None:
    """The version an alias points to, or None when the alias (or the model) does not exist."""
    settings = settings or get_settings()
    try:
        return client(settings).get_model_version_by_alias(settings.model_name, alias)
    except MlflowException as exc:
        if exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}:
            return None
        raise


def get_version(version: str | int, settings: Settings | None = None) -> ModelVersion:
    settings = settings or get_settings()
    try:
        return client(settings).get_model_version(settings.model_name, str(version))
    except MlflowException:
        raise RegistryError(f"model {settings.model_name!r} has no version {version!r}") from None


def aliases(settings: Settings | None = None) -> dict[str, str]:
    """alias → version for the registered model ({} when it does not exist yet)."""
    settings = settings or get_settings()
    try:
        model = client(settings).get_registered_model(settings.model_name)
    except MlflowException:
        return {}
    return {alias: str(version) for alias, version in model.aliases.items()}


def version_metric(version: ModelVersion, metric: str) -> float | None:
    value = version.tags.get(metric)
    return float(value) if value is not None else None


@dataclass(frozen=True)
class GateDecision:
    """What the gate decided for a candidate version, and why (one sentence)."""

    promoted: bool
    alias: str
    reason: str
    candidate_value: float
    champion_version: str | None = None
    champion_value: float | None = None


def decide(
    metric: str,
    task: Task,
    candidate_value: float,
    champion_value: float | None,
    settings: Settings,
    champion_version: str | None = None,
) -> GateDecision:
    """The quality gate: meet the bound, and be no worse than the champion beyond tolerance."""
    low, high = settings.metric_bounds(task)
    lower_better = metric in LOWER_IS_BETTER
    bound = high if lower_better else low
    if bound is not None:
        fails = candidate_value > bound if lower_better else candidate_value < bound
        if fails:
            word = "above the maximum" if lower_better else "below the minimum"
            return GateDecision(
                False,
                CHALLENGER,
                f"{metric} {candidate_value:.4f} is {word} {bound:.4f}",
                candidate_value,
                champion_version,
                champion_value,
            )
    if champion_value is None:
        why = (
            "no champion yet"
            if champion_version is None
            else (f"champion v{champion_version} could not be evaluated on this data")
        )
        return GateDecision(
            True,
            CHAMPION,
            f"{why}; {metric} {candidate_value:.4f} meets the bound",
            candidate_value,
            champion_version,
        )
    tolerance = settings.tolerance(task, champion_value)
    if is_better_or_equal(metric, candidate_value, champion_value, tolerance):
        reason = (
            f"{metric} {candidate_value:.4f} vs champion v{champion_version} "
            f"{champion_value:.4f} (tolerance {tolerance:.4f}) on the same test split"
        )
        return GateDecision(
            True, CHAMPION, reason, candidate_value, champion_version, champion_value
        )
    reason = (
        f"{metric} {candidate_value:.4f} is worse than champion v{champion_version} "
        f"{champion_value:.4f} beyond tolerance {tolerance:.4f}"
    )
    return GateDecision(
        False, CHALLENGER, reason, candidate_value, champion_version, champion_value
    )


def apply_decision(version: str, decision: GateDecision, settings: Settings | None = None) -> None:
    """Move aliases for a gated candidate."""
    if decision.promoted:
        promote(version, settings)
    else:
        settings = settings or get_settings()
        client(settings).set_registered_model_alias(settings.model_name, CHALLENGER, str(version))


def promote(version: str | int, settings: Settings | None = None) -> str | None:
    """Make `version` the champion; the old champion becomes `previous`. Returns the old one."""
    settings = settings or get_settings()
    target = get_version(version, settings)
    current = version_by_alias(CHAMPION, settings)
    mlflow_client = client(settings)
    # MLflow hands versions back as int from some calls and str from others: compare as str.
    new, old = str(target.version), str(current.version) if current is not None else None
    if old == new:
        return None
    if old is not None:
        mlflow_client.set_registered_model_alias(settings.model_name, PREVIOUS, old)
    mlflow_client.set_registered_model_alias(settings.model_name, CHAMPION, new)
    if aliases(settings).get(CHALLENGER) == new:
        mlflow_client.delete_registered_model_alias(settings.model_name, CHALLENGER)
    return old


def rollback(version: str | int | None = None, settings: Settings | None = None) -> str:
    """Move `champion` back to `previous` (or to `version`); returns the new champion version.

    The champion being replaced becomes `previous`, so a second rollback undoes the first.
    """
    settings = settings or get_settings()
    if version is None:
        previous = version_by_alias(PREVIOUS, settings)
        if previous is None:
            raise RegistryError(
                f"model {settings.model_name!r} has no 'previous' version to roll back to"
            )
        version = str(previous.version)
    promote(version, settings)
    return str(version)


def load_reference(
    version: ModelVersion | str | int, settings: Settings | None = None
) -> pd.DataFrame:
    """The drift reference of a version: a training sample with target and `prediction`."""
    import mlflow.artifacts

    settings = settings or get_settings()
    if not isinstance(version, ModelVersion):
        version = get_version(version, settings)
    run_id = version.tags.get("train_run_id") or version.run_id
    path = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=REFERENCE_PATH, tracking_uri=settings.mlflow_tracking_uri
    )
    return pd.read_parquet(path)


def describe(version: ModelVersion) -> dict[str, Any]:
    """Name, version, tags and metrics of a version, as shown by `mlops status` and `GET /model`."""
    from lifecycle.evaluation import CLASSIFICATION_METRICS, REGRESSION_METRICS

    metric_names = CLASSIFICATION_METRICS + REGRESSION_METRICS
    return {
        "model_name": version.name,
        "model_version": str(version.version),
        "aliases": list(getattr(version, "aliases", []) or []),
        "task": version.tags.get("task"),
        "primary_metric": version.tags.get("primary_metric"),
        "trained_at": version.tags.get("trained_at"),
        "metrics": {m: float(version.tags[m]) for m in metric_names if m in version.tags},
        "run_id": version.run_id,
    }


def load_predictor(
    version: str | int | None = None, settings: Settings | None = None
) -> tuple[str, Any]:
    """(version, Predictor) for `version`, or for the served alias when None."""
    import mlflow.pyfunc

    from lifecycle.errors import ModelNotReadyError
    from lifecycle.model import Predictor

    settings = settings or get_settings()
    if version is None:
        found = version_by_alias(settings.model_alias, settings)
        if found is None:
            raise ModelNotReadyError(
                f"model {settings.model_name!r} has no {settings.model_alias!r} alias yet: "
                "run `mlops train` first"
            )
        version = found.version
    else:
        get_version(version, settings)
    from lifecycle import tracking

    uri = f"models:/{settings.model_name}/{version}"
    tracking.use(settings)
    return str(version), Predictor.from_pyfunc(mlflow.pyfunc.load_model(uri))
