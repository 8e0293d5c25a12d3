"""The `train-model` flow: load → split → search → register → gate, with retries, an SLA timeout
and a markdown artifact. Orchestration only: the work is in `lifecycle.training`.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from lifecycle import training
from lifecycle.data import Dataset, load_dataset
from lifecycle.errors import DataSourceError
from lifecycle.model import FeatureSpec
from lifecycle.registry import GateDecision
from lifecycle.search_space import get_space
from lifecycle.settings import Settings, get_settings


def _worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """Retry network-ish failures; a missing file or a bad column fails at once."""
    exc = state.result(raise_on_failure=False)
    return not isinstance(exc, DataSourceError) or exc.transient


# Tasks pass DataFrames around: hashing them for cache keys would cost more than the work.
@task(
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    retry_jitter_factor=0.5,
    retry_condition_fn=_worth_retrying,
    cache_policy=NO_CACHE,
)
def load_data(source: str, settings: Settings) -> Dataset:
    """Read the training table (I/O: retried with growing delays)."""
    return load_dataset(source, settings.target, settings.task, settings.s3_block)


@task(cache_policy=NO_CACHE)
def split(dataset: Dataset, seed: int) -> training.Splits:
    """Stratified, seeded train / validation / test split."""
    return training.split_dataset(dataset, seed)


@task(cache_policy=NO_CACHE)
def run_search(
    dataset: Dataset,
    splits: training.Splits,
    settings: Settings,
    trials: int,
    space: str,
    seed: int,
    show_progress: bool,
) -> tuple[str, FeatureSpec, training.SearchResult]:
    """hyperopt TPE search; every trial a nested MLflow run; live counts in the logs."""
    logger = get_run_logger()
    search_space = get_space(space)
    spec = FeatureSpec.infer(dataset.frame, dataset.target, dataset.task)
    metric = settings.primary_metric(dataset.task)
    run_id = training.start_run(settings, dataset, search_space, trials)
    logger.info(
        "MLflow run %s: %d trials over space %r, ranking by %s", run_id, trials, space, metric
    )
    step = max(1, trials // 10)
    bar = _progress_bar(trials) if show_progress else None

    def progress(done: int, total: int, best: float | None) -> None:
        if bar is not None:
            bar[0].update(bar[1], completed=done, description=f"best {metric} {best:.4f}")
        if done % step == 0 or done == total:
            logger.info("trial %d/%d done, best validation %s %.4f", done, total, metric, best)

    try:
        if bar is not None:
            bar[0].start()
        result = training.search(run_id, splits, spec, search_space, trials, metric, seed, progress)
    finally:
        if bar is not None:
            bar[0].stop()
    return run_id, spec, result


@task(cache_policy=NO_CACHE)
def register(
    run_id: str,
    splits: training.Splits,
    spec: FeatureSpec,
    result: training.SearchResult,
    settings: Settings,
    dataset: Dataset,
    seed: int,
) -> training.Candidate:
    """Refit the best configuration, evaluate on test, log with signature and register."""
    predictor = training.refit(splits, spec, result.best, seed)
    return training.log_and_register(run_id, splits, predictor, result, settings, dataset, seed)


@task(cache_policy=NO_CACHE)
def quality_gate(
    candidate: training.Candidate, splits: training.Splits, settings: Settings
) -> GateDecision:
    """Champion vs candidate on the same test split; move the aliases."""
    return training.gate(candidate, splits, settings)


def _run_name() -> str:
    """`train-50-trials`: the trial count, from the parameter or the settings' default."""
    from prefect.runtime import flow_run

    trials = flow_run.parameters.get("trials") or get_settings().trials
    return f"train-{trials}-trials"


@flow(
    name="train-model",
    flow_run_name=_run_name,
    retries=1,
    retry_delay_seconds=60,
    timeout_seconds=3600,
    log_prints=True,
)
def train_model(
    trials: int | None = None,
    data_source: str | None = None,
    search_space: str | None = None,
    seed: int | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Train, register and gate one model; returns the summary (version, promoted, metrics)."""
    settings = get_settings()
    trials = trials or settings.trials
    source = data_source or settings.data_source
    space = search_space or settings.search_space
    seed = settings.seed if seed is None else seed
    logger = get_run_logger()

    loader = load_data.with_options(
        retries=settings.load_retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=settings.load_retry_delay_seconds),
    )
    dataset = loader(source, settings)
    logger.info(
        "loaded %s: %d rows, target %r (%s)",
        source,
        len(dataset.frame),
        dataset.target,
        dataset.task,
    )
    splits = split(dataset, seed)
    run_id, spec, result = run_search(dataset, splits, settings, trials, space, seed, show_progress)
    candidate = register(run_id, splits, spec, result, settings, dataset, seed)
    decision = quality_gate(candidate, splits, settings)
    summary = training.summarize(candidate, decision, result, result.metric)
    create_markdown_artifact(
        training.report_markdown(summary),
        key="train-model-summary",
        description=f"Model version {summary.version}: {summary.alias}",
    )
    logger.info("version %s -> %s: %s", summary.version, summary.alias, summary.reason)
    return {
        "version": summary.version,
        "run_id": summary.run_id,
        "promoted": summary.promoted,
        "alias": summary.alias,
        "reason": summary.reason,
        "metric": summary.metric,
        "test_metrics": summary.test_metrics,
        "trials": len(summary.search.trials),
        "search_wall_seconds": summary.search.wall_seconds,
        "search_fit_seconds": summary.search.fit_seconds,
    }


def run_train_flow(settings: Settings | None = None, **parameters: Any) -> dict[str, Any]:
    """Call the flow with the retries and SLA timeout from settings (CLI, demo, tests)."""
    settings = settings or get_settings()
    configured = train_model.with_options(
        retries=settings.train_retries, timeout_seconds=settings.train_timeout_seconds
    )
    return configured(**parameters)


def _progress_bar(total: int) -> tuple[Any, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]search"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        transient=False,
    )
    return bar, bar.add_task("starting", total=total)


if __name__ == "__main__":
    train_model(trials=10)
