"""The `train-model` flow: load → split → search → register → gate, with a markdown artifact.
Orchestration only: the steps are in `lifecycle` (data, splits, search, training, gate), and this
is the one place they are sequenced.

Prefect's retries and timeout are decorator options, fixed when a module is imported; ours come
from settings (MLOPS_TRAIN_RETRIES, MLOPS_TRAIN_TIMEOUT_SECONDS) on every path. So `train-model`,
the flow that deployments, Quick runs, the CLI and the demo call, reads them at run time and
runs the steps as the subflow `train-pipeline` with those options applied (`with_options`).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import State
from prefect.tasks import exponential_backoff

from flows import distributed, train_backtest
from flows.train_summary import TrainResult, report_markdown, summarize
from lifecycle.core.errors import DataSourceError
from lifecycle.core.settings import Settings, get_settings, using
from lifecycle.data import feedback
from lifecycle.data.dataset import Dataset
from lifecycle.data.sources import load_dataset
from lifecycle.data.splits import Splits, split_dataset
from lifecycle.decisions import gate
from lifecycle.model.predictor import FeatureSpec
from lifecycle.stores import registry
from lifecycle.training import search
from lifecycle.training.candidate import Candidate, log_and_register, refit
from lifecycle.training.search_space import get_space


def _worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """Retry network-ish failures; a missing file or a bad column fails at once."""
    exc = state.result(raise_on_failure=False)
    return not isinstance(exc, DataSourceError) or exc.transient


# Tasks pass DataFrames around: hashing them for cache keys would cost more than the work.
@task(retry_condition_fn=_worth_retrying, retry_jitter_factor=0.5, cache_policy=NO_CACHE)
def load_data(source: str, settings: Settings) -> Dataset:
    """Read the training table (I/O: retried with growing delays)."""
    return load_dataset(source, settings.target, settings.task, settings.s3_block)


@task(cache_policy=NO_CACHE)
def split(dataset: Dataset, seed: int) -> Splits:
    """Stratified, seeded train / validation / test split."""
    return split_dataset(dataset, seed)


@task(cache_policy=NO_CACHE)
def run_search(
    dataset: Dataset,
    splits: Splits,
    settings: Settings,
    trials: int,
    space: str,
    seed: int,
    show_progress: bool,
) -> tuple[str, FeatureSpec, search.SearchResult]:
    """hyperopt TPE search; every trial a nested MLflow run; live counts in the logs. With
    MLOPS_DASK_ADDRESS the trials are task runs on that cluster (flows/distributed.py)."""
    logger = get_run_logger()
    search_space = get_space(space)
    spec = FeatureSpec.infer(dataset.frame, dataset.target, dataset.task)
    metric = settings.primary_metric(dataset.task)
    run_id = search.start_run(settings, dataset, search_space, trials)
    logger.info(
        "MLflow run %s: %d trials over space %r, ranking by %s", run_id, trials, space, metric
    )
    step = max(1, trials // 10)
    bar = _progress_bar(trials) if show_progress else None

    def progress(done: int, total: int, best: float | None) -> None:
        shown = "none yet" if best is None else f"{best:.4f}"  # None: every trial failed so far
        if bar is not None:
            bar[0].update(bar[1], completed=done, description=f"best {metric} {shown}")
        if done % step == 0 or done == total:
            logger.info("trial %d/%d done, best validation %s %s", done, total, metric, shown)

    if bar is not None:
        bar[0].start()
    searcher = distributed.search_on_cluster if settings.dask_address else search.search
    try:
        result = searcher(
            settings, run_id, splits, spec, search_space, trials, metric, seed, progress
        )
    finally:
        if bar is not None:
            bar[0].stop()
    return run_id, spec, result


@task(cache_policy=NO_CACHE)
def register(
    run_id: str,
    splits: Splits,
    spec: FeatureSpec,
    result: search.SearchResult,
    settings: Settings,
    dataset: Dataset,
    seed: int,
) -> Candidate:
    """Refit the best configuration, evaluate on test, log with signature and register."""
    predictor = refit(splits, spec, result.best, seed, settings.class_weight)
    return log_and_register(run_id, splits, predictor, result, settings, dataset, seed)


@task(cache_policy=NO_CACHE)
def add_production_rows(
    dataset: Dataset, settings: Settings
) -> tuple[Dataset, feedback.ProductionRows | None]:
    """Append the labelled production rows of MLOPS_FEEDBACK_WINDOW (or hold out the most
    recent rows of a `feedback:` source) for the gate."""
    return feedback.with_production(dataset, settings)


@task(cache_policy=NO_CACHE)
def quality_gate(
    candidate: Candidate,
    splits: Splits,
    settings: Settings,
    production: feedback.ProductionRows | None = None,
) -> gate.GateDecision:
    """Champion vs candidate on the same test split (and on the most recent production labels,
    held out from training, when there are some); move the aliases."""
    holdout = production.holdout if production is not None and production.used else None
    return gate.gate(candidate, splits, settings, holdout)


def _run_name() -> str:
    """`train-50-trials`: the trial count, from the parameter or the settings' default."""
    from prefect.runtime import flow_run

    trials = flow_run.parameters.get("trials") or get_settings().trials
    return f"train-{trials}-trials"


@flow(name="train-pipeline", flow_run_name=_run_name, log_prints=True)
def train_pipeline(
    trials: int | None = None,
    data_source: str | None = None,
    search_space: str | None = None,
    seed: int | None = None,
    show_progress: bool = False,
) -> TrainResult:
    """The steps, once: load, split, search, register, gate; then the backtest of a candidate
    that did not become champion (flows/train_backtest.py)."""
    settings = get_settings()
    trials = trials or settings.trials
    source = data_source or settings.data_source
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
    dataset, production = add_production_rows(dataset, settings)
    if production is not None:
        logger.info("feedback window %s: %s", production.window, production.note)
    splits = split(dataset, seed)
    space = search_space or settings.search_space
    run_id, spec, result = run_search(dataset, splits, settings, trials, space, seed, show_progress)
    candidate = register(run_id, splits, spec, result, settings, dataset, seed)
    decision = quality_gate(candidate, splits, settings, production)
    evidence = None
    if train_backtest.needs_backtest(decision, candidate.version):
        window = train_backtest.backtest_window(settings, production)
        evidence = train_backtest.backtest_candidate(candidate.version, window)
        decision = train_backtest.add_to_gate_reason(candidate, decision, evidence)
    summary = summarize(candidate, decision, result, result.metric, production, evidence)
    logger.info("version %s -> %s: %s", summary.version, summary.alias, summary.reason)
    return summary


@flow(name="train-model", flow_run_name=_run_name, log_prints=True)
def train_model(
    trials: int | None = None,
    data_source: str | None = None,
    search_space: str | None = None,
    seed: int | None = None,
    show_progress: bool = False,
) -> Any:
    """Train, register and gate one model, retried and timed out as the settings say.

    Empty parameters read the settings (MLOPS_TRIALS, MLOPS_DATA_SOURCE, MLOPS_SEARCH_SPACE,
    MLOPS_SEED). Returns the run's summary (version, alias, reason, metrics, search figures).
    """
    settings = get_settings()
    # Before the clock starts: the first use of a store creates its tables and imports MLflow's
    # models, seconds on a loaded machine; Prefect's timeout interrupts by injecting an
    # exception into the thread, and one landing inside that import leaves MLflow half
    # initialised ("Table 'experiments' is already defined"), a Failed run instead of TimedOut.
    registry.configure(settings)
    # Outside the retried pipeline: an unreachable scheduler fails this run at once (within
    # ~15 s), and never falls back to a local search.
    distributed.check_cluster(settings)
    attempt = train_pipeline.with_options(
        retries=settings.train_retries,
        retry_delay_seconds=settings.train_retry_delay_seconds,
        timeout_seconds=settings.train_timeout_seconds,
        # With MLOPS_DASK_ADDRESS the trials' `.submit()` goes to the cluster; None keeps the
        # default runner (the steps themselves are called, not submitted: they stay here).
        task_runner=distributed.task_runner(settings),
    )
    state = attempt(trials, data_source, search_space, seed, show_progress, return_state=True)
    if state.is_completed():
        summary = state.result()
        # On this run, the one a deployment's page and a Quick run show.
        markdown = report_markdown(summary)
        if settings.dask_address:
            markdown += distributed.summary_markdown(summary.search, settings.dask_address)
        create_markdown_artifact(
            markdown,
            key="train-model-summary",
            description=f"Model version {summary.version}: {summary.alias}",
        )
        return summary
    # A copy without the subflow's ids is taken as this run's final state as it is (Prefect's
    # `return_value_to_state`), so a timed-out pipeline ends this run `TimedOut` too, rather
    # than the generic `Failed` that returning the subflow's own state would give.
    return State(type=state.type, name=state.name, message=state.message, data=state.data)


def run_train_flow(settings: Settings | None = None, **parameters: Any) -> TrainResult:
    """Run `train-model` with these settings in force (CLI, demo, tests, benchmarks).

    Raises what the pipeline raised when it did not complete (after its retries)."""
    with using(settings or get_settings()):
        state = train_model(**parameters, return_state=True)
        return state.result()


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
