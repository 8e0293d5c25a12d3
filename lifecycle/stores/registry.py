"""The one door to MLflow: client construction, tracking set-up, alias resolution with one error
policy, alias and tag writes, registration, and the names of aliases, tags and artifacts. Its
two neighbours hold the rest of the door: loading versions and artifacts (registry_loading.py)
and the training runs (registry_runs.py).

Serving, the exporter, the gate, training, reporting and `mlops status` reach MLflow's client
only through these three modules (tests/unit/test_architecture.py checks it).
Error policy: a model, version or alias that does not exist is an answer (`None`, `{}`); any
other failure to read the registry raises `RegistryUnavailableError` with one line.
Only aliases move; versions are never edited after registration, except for the gate's tag.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from lifecycle.core.errors import RegistryError
from lifecycle.core.settings import Settings, get_settings
from lifecycle.core.times import timestamp
from lifecycle.model.evaluation import CLASSIFICATION_METRICS, REGRESSION_METRICS

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


T = TypeVar("T")

# Aliases: champion is served; a gated candidate moves champion -> previous or becomes challenger.
CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous"
ALIASES = (CHAMPION, CHALLENGER, PREVIOUS)

# Tags of a registered version.
TAG_TASK = "task"
TAG_PRIMARY_METRIC = "primary_metric"
TAG_TRAINED_AT = "trained_at"
TAG_DATA_FINGERPRINT = "data_fingerprint"
TAG_TRAIN_RUN_ID = "train_run_id"
TAG_GATE = "gate"
METRIC_TAGS = CLASSIFICATION_METRICS + REGRESSION_METRICS  # each test metric is a tag too

# Artifacts of the training (parent) run.
REFERENCE_PATH = "reference/reference.parquet"
SPEC_PATH = "data/feature_spec.json"
# Classifiers: the probability calibration the label-free estimate uses (lifecycle.model.estimate).
CALIBRATION_PATH = "data/calibration.json"
# The prediction ids of the production rows in the training data (never a backtest's evidence).
PRODUCTION_IDS_PATH = "data/production_ids.json"
PREDICTION_COLUMN = "prediction"

# MLflow's error codes for "no such model / version / alias" (REST and sqlite stores differ).
_MISSING = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"})


class RegistryUnavailableError(RegistryError):
    """The registry cannot be read (server down, store locked, ...): try again later."""


def client(settings: Settings | None = None) -> MlflowClient:
    """An MlflowClient on the settings' tracking + registry URI (no process-wide state)."""
    from mlflow import MlflowClient

    settings = settings or get_settings()
    return MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)


def use(settings: Settings) -> None:
    """Point MLflow's process-wide tracking and registry URIs at the settings' store.

    Works around MLflow 3.x exporting what `mlflow.set_tracking_uri` / `set_registry_uri` are
    given into os.environ (MLFLOW_TRACKING_URI, MLFLOW_REGISTRY_URI, for subprocesses): our
    settings would then read the first back as an explicit override, and a subprocess started
    later (`mlflow models serve`, a flow run) would resolve `models:/...` in whichever store was
    set last. So the environment is put back as the user set it.
    """
    import mlflow

    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    before = {name: os.environ.get(name) for name in names}
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def configure(settings: Settings | None = None) -> str:
    """Point MLflow at the settings' store and return the experiment id (created if missing).

    With a local sqlite store MLflow would put artifacts in ./mlruns of whatever directory the
    process runs in; creating the experiment with an explicit location keeps them in MLOPS_HOME.
    """
    import mlflow

    settings = settings or get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    use(settings)
    mlflow_client = client(settings)
    experiment = mlflow_client.get_experiment_by_name(settings.experiment)
    if experiment is not None:
        experiment_id = experiment.experiment_id
    else:
        if settings.artifact_location:
            settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
        experiment_id = mlflow_client.create_experiment(
            settings.experiment, artifact_location=settings.artifact_location
        )
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def _read(call: Callable[[], T], missing: T) -> T:
    """Run a registry read under the one error policy (see the module docstring)."""
    from mlflow.exceptions import MlflowException

    try:
        return call()
    except MlflowException as exc:
        if exc.error_code in _MISSING:
            return missing
        raise RegistryUnavailableError(f"registry unreachable: {_one_line(exc)}") from exc
    except Exception as exc:  # connection refused, DNS, timeouts, a locked sqlite file
        raise RegistryUnavailableError(f"registry unreachable: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def version_by_alias(alias: str, settings: Settings | None = None) -> ModelVersion | None:
    """The version an alias points to, or None when the alias (or the model) does not exist."""
    settings = settings or get_settings()
    mlflow_client = client(settings)
    return _read(lambda: mlflow_client.get_model_version_by_alias(settings.model_name, alias), None)


def get_version(version: str | int, settings: Settings | None = None) -> ModelVersion:
    """A version of the settings' model; RegistryError naming it when it does not exist."""
    settings = settings or get_settings()
    mlflow_client = client(settings)
    found = _read(lambda: mlflow_client.get_model_version(settings.model_name, str(version)), None)
    if found is None:
        raise RegistryError(f"model {settings.model_name!r} has no version {version!r}")
    return found


def aliases(settings: Settings | None = None) -> dict[str, str]:
    """alias → version for the registered model ({} when it does not exist yet)."""
    settings = settings or get_settings()
    mlflow_client = client(settings)
    model = _read(lambda: mlflow_client.get_registered_model(settings.model_name), None)
    if model is None:
        return {}
    return {alias: str(version) for alias, version in model.aliases.items()}


def trained_at(version: ModelVersion) -> float | None:
    """Unix time the version was trained (its tag; else when it was registered)."""
    trained = timestamp(version.tags.get(TAG_TRAINED_AT))
    if trained is None and version.creation_timestamp:
        trained = version.creation_timestamp / 1000
    return trained


def version_metrics(version: ModelVersion) -> dict[str, float]:
    """The test metrics a version was registered with (its metric tags that hold numbers; a
    tag edited by hand into text is left out rather than failing every reader)."""
    metrics = {}
    for name in METRIC_TAGS:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            metrics[name] = float(version.tags[name])
    return metrics


def describe(version: ModelVersion) -> dict[str, Any]:
    """Name, version, tags and metrics of a version, as shown by `mlops status` and `GET /model`."""
    return {
        "model_name": version.name,
        "model_version": str(version.version),
        "aliases": list(getattr(version, "aliases", []) or []),
        "task": version.tags.get(TAG_TASK),
        "primary_metric": version.tags.get(TAG_PRIMARY_METRIC),
        "trained_at": version.tags.get(TAG_TRAINED_AT),
        "metrics": version_metrics(version),
        "run_id": version.run_id,
    }


def train_run_id(version: ModelVersion) -> str:
    """The training (parent) run that holds a version's reference and feature spec."""
    return version.tags.get(TAG_TRAIN_RUN_ID) or version.run_id


def register(model_uri: str, tags: dict[str, str], settings: Settings | None = None) -> str:
    """Register a logged model as a new version of the settings' model; its version number."""
    import mlflow

    settings = settings or get_settings()
    return str(mlflow.register_model(model_uri, settings.model_name, tags=tags).version)


def set_alias(alias: str, version: str | int, settings: Settings | None = None) -> None:
    """Point `alias` at `version` of the settings' model (created or moved)."""
    settings = settings or get_settings()
    client(settings).set_registered_model_alias(settings.model_name, alias, str(version))


def tag_version(version: str | int, key: str, value: str, settings: Settings | None = None) -> None:
    """Set one tag of a version of the settings' model (the gate's reason: TAG_GATE)."""
    settings = settings or get_settings()
    client(settings).set_model_version_tag(settings.model_name, str(version), key, value)


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


def remove_alias(alias: str, settings: Settings | None = None) -> None:
    """Delete `alias` of the settings' model; nothing happens when it does not exist."""
    settings = settings or get_settings()
    if alias in aliases(settings):
        client(settings).delete_registered_model_alias(settings.model_name, alias)


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
