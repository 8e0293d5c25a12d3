"""Registered versions and their artifacts brought into this process: a run's artifact, a
version's drift reference, the version itself (pyfunc, predictor, input example), the predictor
an alias points to. Versions are found through registry.py, under its error policy."""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifecycle.core.errors import ModelNotReadyError
from lifecycle.core.settings import Settings, get_settings
from lifecycle.model.predictor import Predictor
from lifecycle.stores.registry import (
    REFERENCE_PATH,
    get_version,
    train_run_id,
    use,
    version_by_alias,
)

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.pyfunc import PyFuncModel


def download_run_artifact(run_id: str, path: str, settings: Settings | None = None) -> Path:
    """A local copy of one artifact of a run."""
    import mlflow.artifacts

    settings = settings or get_settings()
    return Path(
        mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=path, tracking_uri=settings.mlflow_tracking_uri
        )
    )


def read_run_json(run_id: str, path: str, settings: Settings | None = None) -> Any:
    """One JSON artifact of a run, or None when the run has no such artifact (a version
    trained before it was logged)."""
    import json

    from mlflow.exceptions import MlflowException

    try:
        return json.loads(download_run_artifact(run_id, path, settings).read_text())
    except (MlflowException, OSError, ValueError):
        return None


def load_reference(version: ModelVersion | str | int, settings: Settings | None = None) -> Any:
    """The drift reference of a version: a training sample with target and `prediction`."""
    import pandas as pd
    from mlflow.entities.model_registry import ModelVersion

    settings = settings or get_settings()
    if not isinstance(version, ModelVersion):
        version = get_version(version, settings)
    return pd.read_parquet(download_run_artifact(train_run_id(version), REFERENCE_PATH, settings))


@contextlib.contextmanager
def _no_progress_bar() -> Any:
    """MLflow 3 draws a download progress bar on stderr, which would turn a CLI's one-line
    error (`mlops predict-batch`) into several lines; it reads this variable at call time."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@dataclass(frozen=True)
class LoadedVersion:
    """A registered version loaded in this process: the pyfunc, our predictor, its example."""

    version: ModelVersion
    pyfunc: PyFuncModel
    predictor: Predictor
    input_example: Any  # a DataFrame, or None when the version was logged without one


def load_version(version: ModelVersion, settings: Settings | None = None) -> LoadedVersion:
    """Download and load a version (raises on any problem; nothing is cached or swapped)."""
    import mlflow.artifacts
    import mlflow.pyfunc

    settings = settings or get_settings()
    use(settings)  # models:/ URIs resolve through the process-wide registry URI
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp, _no_progress_bar():
        local = mlflow.artifacts.download_artifacts(
            f"models:/{version.name}/{version.version}", dst_path=tmp
        )
        pyfunc_model = mlflow.pyfunc.load_model(local)
        example = pyfunc_model.metadata.load_input_example(local)
    return LoadedVersion(version, pyfunc_model, Predictor.from_pyfunc(pyfunc_model), example)


def load_predictor(
    version: str | int | None = None, settings: Settings | None = None
) -> tuple[str, Predictor]:
    """(version, Predictor) for `version`, or for the served alias when None."""
    settings = settings or get_settings()
    if version is None:
        found = version_by_alias(settings.model_alias, settings)
        if found is None:
            raise ModelNotReadyError(
                f"model {settings.model_name!r} has no {settings.model_alias!r} alias yet: "
                "run `mlops train` first"
            )
    else:
        found = get_version(version, settings)
    return str(found.version), load_version(found, settings).predictor
