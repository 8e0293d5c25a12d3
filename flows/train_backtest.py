"""Evidence without waiting: after the gate, a candidate that did not become champion (it goes to
the shadow alias or to `challenger`) is backtested on the recent production window, against the
answers that served it, before any live traffic reaches it.

The `backtest` flow (flows/backtest.py) runs as a subflow and does the work: it replays the
candidate by its version number, so the prediction ids its own training run recorded are the
ones left out. This module only decides whether to run it, on which window, and turns its
outcome into one line for the gate's reason and a section of the `train-model` artifact. It never
fails the training run: an unreachable store, an empty window or any error in the backtest is a
line "backtest skipped: <reason>".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.backtest import backtest
from lifecycle.core.settings import Settings, get_settings
from lifecycle.core.times import parse_duration, window_bounds
from lifecycle.data.feedback import ProductionRows
from lifecycle.decisions import gate
from lifecycle.stores.prediction_store import PredictionStore
from lifecycle.training.candidate import Candidate
from reporting.backtest import backtest_line

SKIPPED = "backtest skipped"


@dataclass(frozen=True)
class CandidateBacktest:
    """The candidate's backtest: its window and one-line summary (or why it was skipped), the
    `backtests` document as the flow returned it, and its markdown lines."""

    window: str
    line: str
    document: dict[str, Any] | None = None
    details: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> bool:
        return self.document is None

    def markdown(self) -> str:
        """The `train-model` artifact's section."""
        body = self.details if self.details else [self.line]
        return "\n".join(["## Backtest before live traffic", "", *body])


def backtest_window(settings: Settings, production: ProductionRows | None) -> str:
    """MLOPS_FEEDBACK_WINDOW's (or a `feedback:` source's) window when training used production
    labels, else MLOPS_REPORT_WINDOW."""
    if production is not None and production.used:
        return production.window
    return settings.report_window


def needs_backtest(decision: gate.GateDecision, version: str) -> bool:
    """A candidate that was not made champion while another version is champion."""
    return (
        not decision.promoted
        and decision.champion_version is not None
        and decision.champion_version != version
    )


@task(cache_policy=NO_CACHE)
def why_not_backtest(window: str) -> str | None:
    """Why the window cannot be backtested (the store unreachable, no prediction logged), or
    None (MongoDB I/O; one try, a store that is down answers within its 5 s time-out)."""
    start, stop = window_bounds(parse_duration(window), datetime.now(UTC))
    store = PredictionStore.open(get_settings(), "report")
    try:
        rows = store.count_window(start, stop)
    except Exception as exc:  # pymongo's errors are many: any of them means "store unreachable"
        return f"prediction store unreachable ({_first_line(exc)})"
    finally:
        store.close()
    return None if rows else f"no predictions logged in the last {window}"


def backtest_candidate(version: str, window: str) -> CandidateBacktest:
    """Run the `backtest` subflow of `version` on the last `window` against the logged answers;
    a skipped one says why. Never raises: the backtest is evidence, not a step training needs."""
    result: dict[str, Any] = {}
    try:
        why = why_not_backtest(window)
        if why is None:
            result = backtest(version=version, window=window)
    except Exception as exc:  # whatever the probe or the replay raised, training has succeeded
        why = f"{type(exc).__name__}: {_first_line(exc)}"
    if why is not None:
        return _skipped(window, why)
    outcome = CandidateBacktest(
        window, backtest_line(result), result, result["summary"].splitlines()
    )
    get_run_logger().info("%s", outcome.line)
    return outcome


@task(cache_policy=NO_CACHE)
def add_to_gate_reason(
    candidate: Candidate, decision: gate.GateDecision, outcome: CandidateBacktest
) -> gate.GateDecision:
    """Append the backtest's line to the gate's reason: the version's tag and the run's tag
    (MLflow I/O)."""
    return gate.amend_reason(
        candidate.version, candidate.run_id, decision, outcome.line, get_settings()
    )


def _skipped(window: str, why: str) -> CandidateBacktest:
    line = f"{SKIPPED}: {why}"
    get_run_logger().warning("%s", line)
    return CandidateBacktest(window, line)


def _first_line(exc: BaseException, limit: int = 120) -> str:
    """The cause in a few words: pymongo's server-selection errors append their time-outs and
    the whole topology to the one line that matters (`host:port: [Errno 111] ...`)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = re.split(r" \(configured timeouts|, Timeout: |, Topology Description", text)[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."
