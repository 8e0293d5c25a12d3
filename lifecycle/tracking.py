"""MLflow set-up at call time: tracking URI and the experiment, with artifacts under MLOPS_HOME."""

from __future__ import annotations

import os

import mlflow
from mlflow import MlflowClient

from lifecycle.settings import Settings, get_settings


def configure(settings: Settings | None = None) -> str:
    """Point MLflow at the settings' store and return the experiment id (created if missing).

    With a local sqlite store MLflow would put artifacts in ./mlruns of whatever directory the
    process runs in; creating the experiment with an explicit location keeps them in MLOPS_HOME.
    """
    settings = settings or get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    use(settings)
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is not None:
        experiment_id = experiment.experiment_id
    else:
        if settings.artifact_location:
            settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
        experiment_id = client.create_experiment(
            settings.experiment, artifact_location=settings.artifact_location
        )
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def use(settings: Settings) -> None:
    """Point MLflow's process-wide tracking and registry URIs at the settings' store.

    `mlflow.set_tracking_uri` / `set_registry_uri` also export MLFLOW_TRACKING_URI and
    MLFLOW_REGISTRY_URI into os.environ (for subprocesses). Our settings would then read the
    first back as an explicit override, and any subprocess started later (`mlflow models serve`,
    a flow run) would resolve `models:/...` in whichever store was set last. So the environment
    is put back as the user set it.
    """
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    before = {name: os.environ.get(name) for name in names}
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
