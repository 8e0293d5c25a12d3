"""The search on a Dask cluster (`MLOPS_DASK_ADDRESS`): hyperopt TPE asked for one suggestion at
a time (lifecycle.training.trial_batches), each trial a Prefect task run submitted through
`prefect_dask.DaskTaskRunner(address=...)`, a fixed number in flight, the results told back in
trial order (`search_in_window`: one seed, one sequence of suggestions).

`train-pipeline` runs with that task runner when the address is set (flows/train.py), so a
trial's `.submit()` lands on the cluster while the other steps stay in the flow's process.
What can be checked before the run starts is checked in `check_cluster`, with one line naming
the setting: a tracking store or Prefect API the workers cannot reach, an unreachable scheduler.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext, TaskRunContext

from lifecycle.core.settings import Settings
from lifecycle.data.splits import Splits
from lifecycle.model.evaluation import loss
from lifecycle.model.predictor import FeatureSpec
from lifecycle.stores.registry_runs import NestedRuns, experiment_of
from lifecycle.training import cluster, search
from lifecycle.training.cluster import ClusterError
from lifecycle.training.search_space import SearchSpace
from lifecycle.training.trial_batches import BatchedTPE, Suggestion, search_in_window
from lifecycle.training.trials import TrialData, TrialResult, best_value, run_trial


def task_runner(settings: Settings) -> Any | None:
    """The DaskTaskRunner for MLOPS_DASK_ADDRESS (one that keeps each worker's Prefect settings
    and API client between trials: flows/dask_runner.py); None when unset (the flow's default
    runner)."""
    if not settings.dask_address:
        return None
    from flows.dask_runner import CachedContextDaskTaskRunner

    return CachedContextDaskTaskRunner(
        address=settings.dask_address,
        client_kwargs={"timeout": f"{cluster.CONNECT_TIMEOUT_SECONDS}s"},
    )


def prefect_api_url() -> str | None:
    """The Prefect API this process reports to; None in ephemeral mode (no server set)."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url) if url else None


def check_cluster(settings: Settings) -> None:
    """Before a distributed search starts: usable settings, a scheduler that answers within
    CONNECT_TIMEOUT_SECONDS, and at least one worker. Never falls back to a local search."""
    if not settings.dask_address:
        return
    cluster.check_tracking(settings)
    # The scheduler before Prefect's settings: importing Prefect takes seconds on a busy machine.
    cluster.probe_scheduler(settings.dask_address)
    cluster.check_prefect_api(settings, prefect_api_url())


@task(name="trial", task_run_name="trial-{number:03d}", cache_policy=NO_CACHE)
def trial(
    data: TrialData,
    params: dict[str, Any],
    number: int,
    settings: Settings,
    parent_run_id: str,
    experiment_id: str,
) -> TrialResult:
    """One hyperopt trial on a Dask worker: fit, score, log its nested run tagged `worker`."""
    from distributed import get_worker

    runs = NestedRuns(settings, parent_run_id, experiment_id)
    return run_trial(data, params, number, runs, get_worker().address)


def _cluster_client(address: str) -> Any:
    """The Dask client of the flow's DaskTaskRunner (connecting now, with one-line errors)."""
    from prefect_dask import DaskTaskRunner

    context = FlowRunContext.get()
    runner = context.task_runner if context else None
    if not isinstance(runner, DaskTaskRunner):
        raise ClusterError(f"MLOPS_DASK_ADDRESS={address} is set but the flow has no Dask runner")
    try:
        return runner.client
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"Dask scheduler MLOPS_DASK_ADDRESS={address}: {exc}") from None


def _retried(client: Any, future: Any) -> bool:
    """Whether the scheduler ran the trial more than once (its worker was lost mid-trial).
    Asked of the scheduler only, when the trial is done (its story is in the scheduler's
    bounded transition log now, maybe not by the end of a long search): Client.story also asks
    every worker, and a worker that hangs (SIGSTOP, a swapping host) would hang the search
    with it until that worker is removed."""
    key = future.wrapped_future.key
    story = client.sync(client.scheduler.get_story, keys_or_stimuli=[key])
    # (key, start, finish, recommendations, stimulus_id, timestamp): entries into processing
    return sum(1 for step in story if step[0] == key and step[2] == "processing") > 1


def _outcome(future: Any, number: int, logger: Any) -> TrialResult | None:
    """The trial's result, or None when it failed (logged: one failed trial must not end the
    search, whatever it raised; KilledWorker when the cluster gave up on it)."""
    try:
        value = future.result(raise_on_failure=False)
    except Exception as exc:
        logger.warning("trial %d failed on the cluster: %s", number, exc)
        return None
    if isinstance(value, TrialResult):
        return value
    logger.warning("trial %d failed: %s", number, value)
    return None


def search_on_cluster(
    settings: Settings,
    run_id: str,
    splits: Splits,
    spec: FeatureSpec,
    space: SearchSpace,
    trials: int,
    metric: str,
    seed: int,
    progress: search.Progress | None = None,
) -> search.SearchResult:
    """The search on MLOPS_DASK_ADDRESS, MLOPS_PARALLEL_TRIALS trials in flight; call inside
    `train-pipeline` running with `task_runner(settings)`."""
    address = str(settings.dask_address)
    client = _cluster_client(address)
    slots = sum(client.nthreads().values())
    window = settings.parallel_trials or in_flight_default(slots)
    experiment_id = experiment_of(run_id, settings)
    # Once per worker, not per trial: the future of a broadcast scatter resolves on each worker
    # to its own copy. One thread per trial unless MLOPS_TRIAL_THREADS says otherwise, so that
    # a worker's threads times the trials' threads does not oversubscribe its cores.
    data = TrialData(
        run_id, splits, spec, space, seed, settings.trial_threads or 1, settings.class_weight
    )
    shared = client.scatter(data, broadcast=True)
    get_run_logger().info(
        "searching on %s: %d worker threads, %d trials in flight", address, slots, window
    )
    tally = _Tally(client, metric, trials, progress)

    def submit(suggestion: Suggestion) -> Any:
        with _without_parent_parameters():
            return trial.submit(
                shared, suggestion.params, suggestion.number, settings, run_id, experiment_id
            )

    started = time.perf_counter()
    search_in_window(BatchedTPE(space.space, seed), trials, window, submit, tally.finish)
    if not tally.results:
        raise ClusterError(f"all {trials} trials failed on MLOPS_DASK_ADDRESS={address}")
    return search.SearchResult(
        metric,
        tally.results,
        time.perf_counter() - started,
        space.name,
        failed=tally.failed,
        retried=tally.retried,
        parallel=window,
        workers=sorted({r.worker for r in tally.results if r.worker}),
    )


def in_flight_default(slots: int) -> int:
    """Four per worker thread. Trials are told oldest first, so while the oldest trial in
    flight is a slow one (fit times within a search differ up to 6x), the other slots can only
    run what is already in flight: one per slot leaves every slot that finishes first idle, as a
    synchronous batch does (efficiency 0.62 on 2 workers); two per slot still left them idle
    4.6 % of the search (the tasks' Dask stream: gaps between one worker's trials), four per slot
    0.3 %. What TPE loses, trial k suggested without the last few results, did not show: the best
    validation log loss of 50 trials over 5 seeds was the same with 1, 4 and 8 in flight
    (median 0.4932, 0.4929, 0.4929; README, "Training on a local Dask cluster")."""
    return 4 * max(1, slots)


@contextlib.contextmanager
def _without_parent_parameters() -> Iterator[None]:
    """The enclosing task's run context without its parameters, while trials are submitted.

    Each submit sends the current context to the worker (prefect.context.serialize_context),
    and a task run context carries its task's parameters: `run_search`'s dataset and splits,
    12.8 MB per trial at 100,000 rows. Pickled and shipped once per trial, that kept each
    worker idle 0.6-1 s between trials (measured with the tasks' Dask stories) and held the
    cluster's efficiency to 0.43. The trials need the parent task run (their link in the
    UI), not its arguments; that is kept."""
    context = TaskRunContext.get()
    if context is None or not context.parameters:
        yield
        return
    with context.model_copy(update={"parameters": {}}):
        yield


class _Tally:
    """The search's running tally: results, failed and retried counts, progress."""

    def __init__(
        self, client: Any, metric: str, trials: int, progress: search.Progress | None
    ) -> None:
        self.client, self.metric, self.trials, self.progress = client, metric, trials, progress
        self.results: list[TrialResult] = []
        self.failed = self.retried = 0
        self.logger = get_run_logger()

    def finish(self, suggestion: Suggestion, future: Any) -> float | None:
        """Wait for one trial; its loss for TPE (None when it failed, counted)."""
        outcome = _outcome(future, suggestion.number, self.logger)
        self.retried += _retried(self.client, future)
        if outcome is None:
            self.failed += 1
        else:
            self.results.append(outcome)
        if self.progress is not None:
            done = len(self.results) + self.failed
            self.progress(done, self.trials, best_value(self.results, self.metric))
        return None if outcome is None else loss(self.metric, outcome.metrics[self.metric])


def summary_markdown(result: search.SearchResult, address: str) -> str:
    """The distributed part of the run's artifact (the rest is the local run's, unchanged)."""
    return (
        f"\n\nDistributed on `{address}`: {len(result.trials) + result.failed} trials, "
        f"{result.parallel} in flight, on {len(result.workers)} workers "
        f"({', '.join(result.workers)}); **{result.failed} failed**, {result.retried} retried "
        "after a lost worker."
    )
