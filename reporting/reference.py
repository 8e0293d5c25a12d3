"""The drift reference of a registered model version, with what a report needs to read it: the
feature spec (column kinds, target, task, classes) and the version's test metrics.

A version is never edited, so its reference is prepared once: typed as Evidently compares it,
written under `$MLOPS_HOME/cache/reference/<model>/<version>-<run>/` (Parquet keeps the
dtypes) and read from there by every later report in milliseconds.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from lifecycle.core.errors import LifecycleError
from lifecycle.core.settings import Settings, get_settings
from lifecycle.model.evaluation import metric_names
from lifecycle.model.predictor import FeatureSpec


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
    typed: bool = False  # `frame` is already in reporting.drift.typed_frame's shape
    # Classifiers trained since the label-free estimate: the calibration stored with the
    # version (lifecycle.model.estimate.Calibration.to_dict); None for older versions.
    calibration: dict[str, Any] | None = None


CACHE_FRAME = "reference.parquet"
CACHE_META = "reference.json"


def cached_reference(version: str, settings: Settings | None = None) -> Reference:
    """`version`'s reference, typed, from the cache under MLOPS_HOME (filled on first use)."""
    from lifecycle.stores import registry

    settings = settings or get_settings()
    model_version = registry.get_version(version, settings)
    run_id = model_version.tags.get("train_run_id") or model_version.run_id
    folder = reference_cache_dir(settings, str(version), str(run_id))
    cached = _read_cache(folder, str(version))
    if cached is not None:
        return cached
    from reporting.drift import typed_frame

    loaded = load_version_reference(version, settings)
    reference = replace(
        loaded, frame=typed_frame(loaded.frame, loaded.spec, with_target=True), typed=True
    )
    _write_cache(folder, reference)
    return reference


def reference_cache_dir(settings: Settings, version: str, run_id: str) -> Path:
    """Keyed by model, version and training run (a re-created store reuses version numbers)."""
    safe = [
        "".join(c if c.isalnum() or c in "-_." else "_" for c in part)
        for part in (settings.model_name, f"{version}-{run_id}")
    ]
    return settings.home / "cache" / "reference" / safe[0] / safe[1]


def _read_cache(folder: Path, version: str) -> Reference | None:
    try:
        meta = json.loads((folder / CACHE_META).read_text())
        frame = pd.read_parquet(folder / CACHE_FRAME)
    except (OSError, ValueError):
        return None  # absent, or half-written by a killed run: rebuilt
    return Reference(
        version=version,
        spec=FeatureSpec.from_dict(meta["spec"]),
        frame=frame,
        primary_metric=meta["primary_metric"],
        test_metrics=meta["test_metrics"],
        trained_at=meta.get("trained_at"),
        typed=True,
        calibration=meta.get("calibration"),
    )


def _write_cache(folder: Path, reference: Reference) -> None:
    """Frame first, then the metadata through a rename: a cache entry is whole or absent."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet", dir=folder)
    os.close(fd)
    reference.frame.to_parquet(tmp, index=False)
    os.replace(tmp, folder / CACHE_FRAME)
    meta = {
        "spec": reference.spec.to_dict(),
        "primary_metric": reference.primary_metric,
        "test_metrics": reference.test_metrics,
        "trained_at": reference.trained_at,
        "calibration": reference.calibration,
    }
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(meta, handle)
    os.replace(tmp, folder / CACHE_META)


def load_version_reference(version: str, settings: Settings | None = None) -> Reference:
    """Reference, spec and test metrics of `version` of the settings' model."""
    from mlflow.exceptions import MlflowException

    from lifecycle.stores import registry, registry_loading

    settings = settings or get_settings()
    model_version = registry.get_version(version, settings)
    run_id = registry.train_run_id(model_version)
    try:
        frame = registry_loading.load_reference(model_version, settings)
        spec_path = registry_loading.download_run_artifact(run_id, registry.SPEC_PATH, settings)
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
    calibration = None
    if spec.is_classifier:
        calibration = registry_loading.read_run_json(run_id, registry.CALIBRATION_PATH, settings)
    return Reference(
        version=str(version),
        spec=spec,
        frame=frame,
        primary_metric=tags.get("primary_metric") or settings.primary_metric(spec.task),
        test_metrics=metrics,
        trained_at=tags.get("trained_at"),
        calibration=calibration,
    )


def champion_history(versions: list[str], settings: Settings | None = None) -> list[dict[str, Any]]:
    """Test metric of each version that served (plus the current champion), oldest first.

    A version serves only after the gate made it champion, so the versions seen in the
    prediction log are the champions over time.
    """
    from lifecycle.stores import registry

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
