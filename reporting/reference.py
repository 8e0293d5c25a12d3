"""The drift reference of a registered model version, with what a report needs to read it: the
feature spec (column kinds, target, task, classes) and the version's test metrics."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lifecycle.errors import LifecycleError
from lifecycle.evaluation import metric_names
from lifecycle.model import FeatureSpec
from lifecycle.settings import Settings, get_settings

SPEC_ARTIFACT = "data/feature_spec.json"


class ReferenceUnavailableError(LifecycleError):
    """The serving version's reference or feature spec cannot be read from MLflow."""


@dataclass(frozen=True)
class Reference:
    """A version's reference sample (features + target + `prediction`) and its spec."""

    version: str
    spec: FeatureSpec
    frame: pd.DataFrame
    primary_metric: str
    test_metrics: dict[str, float] = field(default_factory=dict)
    trained_at: str | None = None


def load_version_reference(version: str, settings: Settings | None = None) -> Reference:
    """Reference, spec and test metrics of `version` of the settings' model."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from lifecycle import registry

    settings = settings or get_settings()
    model_version = registry.get_version(version, settings)
    run_id = model_version.tags.get("train_run_id") or model_version.run_id
    try:
        frame = registry.load_reference(model_version, settings)
        spec_path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=SPEC_ARTIFACT, tracking_uri=settings.mlflow_tracking_uri
        )
    except (MlflowException, OSError) as exc:
        raise ReferenceUnavailableError(
            f"model {settings.model_name!r} version {version}: cannot read its reference "
            f"from training run {run_id} ({exc})"
        ) from exc
    spec = FeatureSpec.from_dict(json.loads(Path(spec_path).read_text()))
    missing = [c for c in [*spec.names, spec.target, "prediction"] if c not in frame.columns]
    if missing:
        raise ReferenceUnavailableError(
            f"model {settings.model_name!r} version {version}: reference lacks columns {missing}"
        )
    tags = model_version.tags
    metrics = {m: float(tags[m]) for m in metric_names(spec.task) if m in tags}
    return Reference(
        version=str(version),
        spec=spec,
        frame=frame,
        primary_metric=tags.get("primary_metric") or settings.primary_metric(spec.task),
        test_metrics=metrics,
        trained_at=tags.get("trained_at"),
    )


def champion_history(versions: list[str], settings: Settings | None = None) -> list[dict[str, Any]]:
    """Test metric of each version that served (plus the current champion), oldest first.

    A version serves only after the gate made it champion, so the versions seen in the
    prediction log are the champions over time.
    """
    from lifecycle import registry

    settings = settings or get_settings()
    wanted = set(versions)
    champion = registry.version_by_alias(registry.CHAMPION, settings)
    if champion is not None:
        wanted.add(str(champion.version))
    points = []
    for number in sorted(wanted, key=_version_key):
        try:
            model_version = registry.get_version(number, settings)
        except LifecycleError:
            continue  # a version deleted from the registry has no metric to plot
        tags = model_version.tags
        metric = tags.get("primary_metric")
        if metric is None or metric not in tags:
            continue
        points.append(
            {
                "version": str(number),
                "metric": metric,
                "value": float(tags[metric]),
                "trained_at": tags.get("trained_at"),
                "champion": champion is not None and str(champion.version) == str(number),
            }
        )
    return points


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 30, version)
