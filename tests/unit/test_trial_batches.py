"""Batched TPE (lifecycle.training.trial_batches): the same suggestions as hyperopt's own `fmin`
loop, the same sequence for the same seed however large the batches, and `search_in_window`'s
trials each suggested on the same told results however they were scheduled."""

from __future__ import annotations

from typing import Any

import numpy as np
from hyperopt import Trials, fmin, tpe

from lifecycle.training.search_space import get_space
from lifecycle.training.trial_batches import BatchedTPE, Suggestion, search_in_window

SPACE = get_space("default").space
TRIALS = 24  # past TPE's 20 random start-up trials, so the model-based suggestions count too


def _loss(params: dict[str, Any]) -> float:
    return (params["max_depth"] - 5) ** 2 + params["learning_rate"]


def _batched(batch: int, seed: int, failing: frozenset[int] = frozenset()) -> list[dict]:
    tpe_ = BatchedTPE(SPACE, seed)
    seen: list[dict] = []
    while len(seen) < TRIALS:
        suggestions = tpe_.ask(min(batch, TRIALS - len(seen)))
        assert [s.number for s in suggestions] == list(
            range(len(seen), len(seen) + len(suggestions))
        )
        seen += [s.params for s in suggestions]
        tpe_.tell({s.number: None if s.number in failing else _loss(s.params) for s in suggestions})
    return seen


def test_batched_tpe_in_batches_of_one_suggests_what_fmin_suggests() -> None:
    seen: list[dict] = []

    def objective(params: dict[str, Any]) -> float:
        seen.append(params)
        return _loss(params)

    fmin(
        objective,
        SPACE,
        algo=tpe.suggest,
        max_evals=TRIALS,
        trials=Trials(),
        rstate=np.random.default_rng(3),
        show_progressbar=False,
    )
    assert _batched(1, seed=3) == seen


def test_batched_tpe_same_seed_same_sequence() -> None:
    assert _batched(4, seed=11) == _batched(4, seed=11)
    assert _batched(4, seed=11) != _batched(4, seed=12)


def test_batched_tpe_failed_trials_do_not_stop_the_search() -> None:
    params = _batched(3, seed=5, failing=frozenset({1, 4}))
    assert len(params) == TRIALS
    assert all(isinstance(p["max_depth"], int) for p in params)  # scope.int applied, as in fmin


def _windowed(window: int, seed: int, finish_order: list[int] | None = None) -> list[dict]:
    """`search_in_window` with trials that "complete" in `finish_order` (by number): a trial's
    loss is only available once it has completed, as with futures on a cluster."""
    tpe_ = BatchedTPE(SPACE, seed)
    submitted: list[Suggestion] = []
    told_when_suggested: list[int] = []
    completed: set[int] = set()
    order = iter(finish_order or range(TRIALS))

    def submit(suggestion: Suggestion) -> int:
        told_when_suggested.append(len(tpe_.trials.losses()) - tpe_.trials.losses().count(None))
        submitted.append(suggestion)
        return suggestion.number

    def finish(suggestion: Suggestion, number: int) -> float | None:
        while number not in completed:  # what a future's result() waits for
            completed.add(next(order))
        return _loss(suggestion.params)

    search_in_window(tpe_, TRIALS, window, submit, finish)
    assert [s.number for s in submitted] == list(range(TRIALS))
    # Trial k was suggested with exactly trials 0..k-window told.
    assert told_when_suggested == [max(0, k - window + 1) for k in range(TRIALS)]
    return [s.params for s in submitted]


def test_window_of_one_suggests_what_batches_of_one_suggest() -> None:
    assert _windowed(1, seed=3) == _batched(1, seed=3)


def test_window_same_seed_same_sequence_whatever_order_trials_finish_in() -> None:
    in_order = _windowed(4, seed=11)
    backwards = _windowed(4, seed=11, finish_order=list(reversed(range(TRIALS))))
    assert in_order == backwards
    assert in_order != _windowed(4, seed=12)


def test_window_search_ends_after_its_trials_when_every_trial_fails() -> None:
    # A cluster whose workers are gone: every trial fails. The search makes exactly TRIALS
    # suggestions and ends; a failed trial is counted, not asked again (hyperopt leaves failed
    # documents out of `Trials.trials`, which made `asked` shrink with every failure).
    tpe_ = BatchedTPE(SPACE, seed=9)
    submitted: list[int] = []

    def submit(suggestion: Suggestion) -> int:
        submitted.append(suggestion.number)
        assert len(submitted) <= TRIALS, "a failed trial was asked again"
        return suggestion.number

    search_in_window(tpe_, TRIALS, 4, submit, lambda suggestion, handle: None)
    assert submitted == list(range(TRIALS)) and tpe_.asked == TRIALS
