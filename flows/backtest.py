"""The `backtest` flow: replay a registered version on a window of the prediction log → a
`backtests` document, a JSON file the index lists, and a markdown artifact.

Orchestration only: the comparison is in reporting.backtest, the window read in reporting.window.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.report import read_predictions
from lifecycle.core.errors import RegistryError
from lifecycle.core.settings import Settings, get_settings
from lifecycle.core.times import parse_duration, window_bounds
from lifecycle.stores import registry, registry_loading
from lifecycle.stores.backtests import insert_backtest
from lifecycle.stores.documents import BacktestDocument
from lifecycle.stores.prediction_store import PredictionStore
from reporting.backtest import BacktestError, Replayed, backtest_window, describe_backtest
from reporting.files import jsonable, write_atomic
from reporting.index import BACKTESTS_DIR

DEFAULT_WINDOW = "14d"


def resolve_version(name: str, settings: Settings) -> Any:
    """A version number or an alias (`champion`, `challenger`, ...) → the registered version."""
    if not name.isdigit():
        found = registry.version_by_alias(name, settings)
        if found is None:
            raise RegistryError(f"model {settings.model_name!r} has no alias {name!r}")
        return found
    return registry.get_version(name, settings)


@task(cache_policy=NO_CACHE)
def load_side(name: str | None, serving: str | None) -> tuple[Replayed, list[str]]:
    """The version to replay (None: the logged answers of `serving`), with its calibration and
    the prediction ids of its training rows (MLflow I/O)."""
    settings = get_settings()
    model_version = resolve_version(name or str(serving), settings)
    run_id = registry.train_run_id(model_version)
    calibration = registry_loading.read_run_json(run_id, registry.CALIBRATION_PATH, settings)
    ids = registry_loading.read_run_json(run_id, registry.PRODUCTION_IDS_PATH, settings) or {}
    predictor = None
    if name is not None:
        predictor = registry_loading.load_predictor(str(model_version.version), settings)[1]
    side = Replayed(str(model_version.version), predictor, calibration)
    return side, list(ids.get("prediction_ids") or [])


@task(retries=2, cache_policy=NO_CACHE)
def record_backtest(document: BacktestDocument) -> str:
    """Insert the `backtests` document and write its JSON for the index (I/O: retried)."""
    settings = get_settings()
    store = PredictionStore.open(settings, "report")
    try:
        insert_backtest(store, document)
    finally:
        store.close()
    stamp = document["created_at"].strftime("%Y%m%dT%H%M%S%fZ")
    path = settings.reports_dir / BACKTESTS_DIR / f"{stamp}-v{document['version']}.json"
    write_atomic(path, json.dumps(jsonable(dict(document)), indent=2))
    return str(path)


def _run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    against = params.get("against") or "logged"
    return (
        f"backtest-v{params.get('version')}-vs-{against}-{params.get('window') or DEFAULT_WINDOW}"
    )


@flow(name="backtest", flow_run_name=_run_name, timeout_seconds=1800)
def backtest(
    version: str,
    window: str = DEFAULT_WINDOW,
    against: str | None = None,
    end: datetime | None = None,
) -> dict[str, Any]:
    """Replay `version` (a number or an alias) on the window ending at `end` (default now), set
    against the logged answers, or against `against` (a version or alias) re-scored too."""
    settings = get_settings()
    start, stop = window_bounds(parse_duration(window), end or datetime.now(UTC))
    data = read_predictions(start, stop)
    if data.sample_rows == 0:
        raise BacktestError(
            f"no predictions between {start:%Y-%m-%d %H:%M} and {stop:%Y-%m-%d %H:%M} UTC"
        )
    challenger, trained_on = load_side(version, data.serving_version)
    baseline, baseline_trained_on = load_side(against, data.serving_version)
    metric = "accuracy" if challenger.predictor.spec.is_classifier else _regression_metric(settings)
    document = backtest_window(
        data,
        settings.model_name,
        window,
        challenger,
        baseline,
        [*trained_on, *baseline_trained_on],
        metric,
    )
    path = record_backtest(document)
    markdown = "\n".join(describe_backtest(document))
    get_run_logger().info("%s", markdown)
    create_markdown_artifact(
        markdown,
        key=f"backtest-{re.sub(r'[^a-z0-9-]+', '-', settings.model_name.lower())}",
        description=f"Backtest of v{document['version']}",
    )
    return {**jsonable(dict(document)), "summary": markdown, "json_path": path}


def _regression_metric(settings: Settings) -> str:
    primary = settings.primary_metric("regression")
    return primary if primary in {"rmse", "mae"} else "rmse"


if __name__ == "__main__":
    backtest(version="champion", window="1d")
