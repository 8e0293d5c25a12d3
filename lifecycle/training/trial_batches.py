"""hyperopt TPE asked for suggestions a few at a time, told the results in trial order.

`fmin` evaluates one trial after another in its own loop. To run trials elsewhere (a Dask
cluster) we drive the same steps `fmin` does (hyperopt 0.2.7+, `FMinIter.run` and
`serial_evaluate`): new trial ids, `tpe.suggest` with a seed drawn from one seeded generator,
the sampled values through `Domain.evaluate_async` (hyperopt's own split of `evaluate` for
parallel engines), then each result written back and `Trials.refresh()`.

`search_in_window` keeps a fixed number of trials in flight and tells results in trial-id order:
trial k is suggested once trials 0..k-window have been told, and only those. What TPE knows at
each suggestion is therefore fixed by the seed and the results, however the trials were
scheduled or how long each took, so one seed gives one sequence of suggestions, as synchronous
batches of `window` would, without a batch's barrier: a finished trial's slot is not left idle
waiting for the slowest trial of its batch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from hyperopt import STATUS_FAIL, STATUS_OK, Domain, Trials, tpe
from hyperopt.base import JOB_STATE_DONE, JOB_STATE_ERROR, JOB_STATE_RUNNING, Ctrl, spec_from_misc
from hyperopt.utils import coarse_utcnow


@dataclass(frozen=True)
class Suggestion:
    """One trial to run: its hyperopt id (= the trial number) and the sampled parameters."""

    number: int
    params: dict[str, Any]


def _unused_objective(params: dict[str, Any]) -> float:
    raise RuntimeError("trials of a batched search are evaluated outside hyperopt")


class BatchedTPE:
    """TPE over `space`, asked for `n` suggestions at a time (`ask`), told their losses (`tell`)."""

    def __init__(self, space: dict[str, Any], seed: int) -> None:
        self.trials = Trials()
        self.domain = Domain(_unused_objective, space)
        # One generator for the whole search, as `fmin(rstate=default_rng(seed))` uses it.
        self.rstate = np.random.default_rng(seed)
        self._pending: dict[int, dict[str, Any]] = {}

    def ask(self, n: int) -> list[Suggestion]:
        """The next `n` suggestions, in trial-id order.

        `tpe.suggest` returns one trial per call whatever the number of ids it is given, so it is
        called once per suggestion, the batch's earlier suggestions already in `Trials` as
        running (TPE counts them as infinite loss): what `fmin(max_queue_len=n)` does."""
        suggestions = []
        for _ in range(n):
            ids = self.trials.new_trial_ids(1)
            self.trials.refresh()
            docs = tpe.suggest(ids, self.domain, self.trials, self.rstate.integers(2**31 - 1))
            self.trials.insert_trial_docs(docs)
            self.trials.refresh()
            for doc in self.trials._dynamic_trials:
                if doc["tid"] in ids:
                    suggestions.append(self._start(doc))
        return suggestions

    @property
    def asked(self) -> int:
        """Suggestions made so far, told or not, failed ones included: every trial document.
        Not `len(trials.trials)`: hyperopt's `refresh` leaves failed (JOB_STATE_ERROR) documents
        out of it, so each failure would be asked again, and a search whose trials keep failing
        (its workers gone) would never end."""
        return len(self.trials._dynamic_trials)

    def _start(self, doc: dict[str, Any]) -> Suggestion:
        """Mark a new trial running; its parameters as the objective would receive them."""
        doc["state"] = JOB_STATE_RUNNING
        doc["book_time"] = doc["refresh_time"] = coarse_utcnow()
        _, sampled = self.domain.evaluate_async(
            spec_from_misc(doc["misc"]), Ctrl(self.trials, current_trial=doc)
        )
        params = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in sampled.items()}
        self._pending[doc["tid"]] = doc
        return Suggestion(doc["tid"], params)

    def tell(self, losses: dict[int, float | None]) -> None:
        """Results of asked trials by number; None = the trial failed (TPE then ignores it)."""
        for number in sorted(losses):
            doc = self._pending.pop(number)
            loss = losses[number]
            if loss is None:
                doc["state"] = JOB_STATE_ERROR
                doc["result"] = {"status": STATUS_FAIL}
            else:
                doc["state"] = JOB_STATE_DONE
                doc["result"] = {"loss": loss, "status": STATUS_OK}
            doc["refresh_time"] = coarse_utcnow()
        self.trials.refresh()


Handle = TypeVar("Handle")


def search_in_window(
    tpe: BatchedTPE,
    trials: int,
    window: int,
    submit: Callable[[Suggestion], Handle],
    finish: Callable[[Suggestion, Handle], float | None],
) -> None:
    """Run `trials` suggestions with `window` of them in flight.

    `submit` starts a trial and returns a handle (a future); `finish` waits for it and returns
    its loss, None for a failed trial. Trials are finished oldest first, and each told result
    makes room for exactly one new suggestion, so trial k always sees trials 0..k-window told
    and the rest of the window running. Results that come back out of order wait, untold, in
    their handles."""
    in_flight: deque[tuple[Suggestion, Handle]] = deque()

    def top_up() -> None:
        while len(in_flight) < window and tpe.asked < trials:
            (suggestion,) = tpe.ask(1)
            in_flight.append((suggestion, submit(suggestion)))

    top_up()
    while in_flight:
        suggestion, handle = in_flight.popleft()
        tpe.tell({suggestion.number: finish(suggestion, handle)})
        top_up()
