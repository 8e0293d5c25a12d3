"""What a `train-model` run returns and shows: the registered candidate, the search behind it and
the gate's decision on it, as one summary and as the markdown of the run's artifact.

Built here, beside the flow that sequences the steps, because it is the one place that holds the
outputs of all of them: training (lifecycle.training) comes before the gate
(lifecycle.decisions), and neither imports the other's result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flows.train_backtest import CandidateBacktest
from lifecycle.data.feedback import ProductionRows
from lifecycle.decisions.gate import GateDecision
from lifecycle.model.evaluation import loss
from lifecycle.training.candidate import Candidate
from lifecycle.training.search import SearchResult


@dataclass
class TrainResult:
    """One run: the version and where it went (alias, reason), its metrics and the search."""

    version: str
    run_id: str
    promoted: bool
    alias: str
    reason: str
    metric: str
    test_metrics: dict[str, float]
    champion_version: str | None
    champion_value: float | None
    search: SearchResult
    register_seconds: float
    production: ProductionRows | None = None  # labelled production rows used (feedback window)
    # The backtest on the recent production window of a candidate that did not become champion
    # (None: it became champion, or there was no champion to set it against).
    backtest: CandidateBacktest | None = None


def summarize(
    candidate: Candidate,
    decision: GateDecision,
    result: SearchResult,
    metric: str,
    production: ProductionRows | None = None,
    backtest: CandidateBacktest | None = None,
) -> TrainResult:
    """The run's summary from what its steps returned."""
    return TrainResult(
        version=candidate.version,
        run_id=candidate.run_id,
        promoted=decision.promoted,
        alias=decision.alias,
        reason=decision.reason,
        metric=metric,
        test_metrics=candidate.test_metrics,
        champion_version=decision.champion_version,
        champion_value=decision.champion_value,
        search=result,
        register_seconds=candidate.register_seconds,
        production=production,
        backtest=backtest,
    )


def report_markdown(result: TrainResult, top: int = 5) -> str:
    """The Prefect artifact / CLI summary: top trials, chosen params, test metrics, gate."""
    top = min(top, len(result.search.trials))
    lines = [
        f"# Training run `{result.run_id}`",
        "",
        f"**Model version {result.version}**: "
        + ("promoted to `champion`" if result.promoted else f"set as `{result.alias}`")
        + f" ({result.reason}).",
        "",
        *([result.production.markdown(), ""] if result.production is not None else []),
        *([result.backtest.markdown(), ""] if result.backtest is not None else []),
        "## Test metrics",
        "",
        "| metric | value |",
        "| --- | --- |",
        *[f"| {k} | {v:.4f} |" for k, v in result.test_metrics.items()],
        "",
        f"## Top {top} of {len(result.search.trials)} trials (by validation {result.metric})",
        "",
        "| trial | " + " | ".join(f"val {m}" for m in result.search.best.metrics) + " | params |",
        "| --- | " + " | ".join("---" for _ in result.search.best.metrics) + " | --- |",
    ]
    ranked = sorted(
        result.search.trials, key=lambda t: loss(result.metric, t.metrics[result.metric])
    )
    for t in ranked[:top]:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in t.params.items())
        values = " | ".join(f"{v:.4f}" for v in t.metrics.values())
        lines.append(f"| {t.number} | {values} | {params} |")
    lines += [
        "",
        "## Chosen parameters",
        "",
        *[f"- `{k}` = {_fmt(v)}" for k, v in result.search.best.params.items()],
        "",
        f"Search: {result.search.wall_seconds:.1f} s wall, "
        f"{result.search.fit_seconds:.1f} s in XGBoost fit; log + register "
        f"{result.register_seconds:.1f} s.",
    ]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
