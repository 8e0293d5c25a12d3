"""One live experiment per challenger, valid however often it is looked at.

A challenger's experiment starts the first time a report sees it paired with the champion (as a
shadow, or as a canary with a shadow) and accumulates the paired outcomes of every report window
after that, until the sequential test (lifecycle.decisions.sequential, a one-sided mixture
likelihood ratio) decides, or the challenger or the champion changes, which starts a new one.
Each report window is counted once: a window that ends no later than the last one counted
(a report run again over the same hours) leaves the experiment as it was.

Its running state is a document in the `experiments` collection, `_id`
"MODEL:vCHAMPION->vCHALLENGER": the models, when it started and was last updated, the end of the
last window counted, alpha and the prior, and the test's state (wins, losses, ties, windows,
the two log likelihood ratios and the decision). `mlops experiment`, the report page and the
index show it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from lifecycle.core.settings import Settings
from lifecycle.decisions import sequential
from lifecycle.decisions.sequential import SequentialState


@dataclass(frozen=True)
class PairedCounts:
    """One window's paired outcomes: `wins` the challenger was right (or closer) and the
    champion not, `losses` the reverse, `ties` the rest of the pairs."""

    champion: str
    challenger: str
    wins: int
    losses: int
    ties: int


@dataclass(frozen=True)
class LiveExperiment:
    """The running sequential test of one challenger against one champion."""

    model_name: str
    champion: str
    challenger: str
    started_at: datetime
    updated_at: datetime
    counted_until: datetime | None
    alpha: float
    prior: float
    state: SequentialState

    @property
    def id(self) -> str:
        return experiment_id(self.model_name, self.champion, self.challenger)

    @property
    def threshold(self) -> float:
        """1/alpha: the likelihood ratio at which the test decides."""
        return 1 / self.alpha

    def to_document(self) -> dict[str, Any]:
        return {
            "_id": self.id,
            "model_name": self.model_name,
            "champion": self.champion,
            "challenger": self.challenger,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "counted_until": self.counted_until,
            "alpha": self.alpha,
            "prior": self.prior,
            "state": sequential.to_document(self.state),
        }

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> LiveExperiment:
        return cls(
            model_name=document["model_name"],
            champion=str(document["champion"]),
            challenger=str(document["challenger"]),
            started_at=document["started_at"],
            updated_at=document["updated_at"],
            counted_until=document.get("counted_until"),
            alpha=float(document["alpha"]),
            prior=float(document["prior"]),
            state=sequential.from_document(document["state"]),
        )


def experiment_id(model_name: str, champion: str, challenger: str) -> str:
    return f"{model_name}:v{champion}->v{challenger}"


def advance(
    current: LiveExperiment | None,
    counts: PairedCounts,
    window_end: datetime,
    now: datetime,
    settings: Settings,
) -> LiveExperiment:
    """The experiment after one more report window. `current`: the stored experiment of these
    two versions, or None to start one (alpha is fixed when it starts: changing
    MLOPS_LIVE_ALPHA mid-way would void the guarantee)."""
    if current is None:
        current = LiveExperiment(
            model_name=settings.model_name,
            champion=counts.champion,
            challenger=counts.challenger,
            started_at=now,
            updated_at=now,
            counted_until=None,
            alpha=settings.live_alpha,
            prior=sequential.DEFAULT_PRIOR,
            state=SequentialState(),
        )
    if current.counted_until is not None and window_end <= current.counted_until:
        return current  # this window was counted already
    state = sequential.update(
        current.state,
        counts.wins,
        counts.losses,
        counts.ties,
        current.alpha,
        prior=current.prior,
    )
    return replace(current, state=state, updated_at=now, counted_until=window_end)


def summary(experiment: LiveExperiment) -> str:
    """One line: the pairs, the two likelihood ratios against 1/alpha, the decision."""
    state = experiment.state
    return (
        f"v{experiment.challenger} vs v{experiment.champion} since "
        f"{experiment.started_at:%Y-%m-%d %H:%M} UTC: {state.pairs} pairs over "
        f"{state.windows} windows (challenger right alone {state.wins}, champion right alone "
        f"{state.losses}); likelihood ratio better {_ratio(state.log_lr_better)}, worse "
        f"{_ratio(state.log_lr_worse)}, decides at {experiment.threshold:g}: {state.decision}"
    )


def _ratio(log_value: float) -> str:
    if log_value > 700:  # past float range: it decided long ago
        return f"e^{log_value:.0f}"
    return f"{math.exp(log_value):.3g}"
