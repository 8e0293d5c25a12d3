"""Live experiments: per-version live metrics, the paired outcomes of a challenger against the
champion, and the three decisions taken on live evidence (docs: "How decisions are made").

* **Paired outcomes.** A shadow scores the same labelled rows as the champion, so each row is a
  pair. For classification a row is a challenger win when only the challenger is right, a loss
  when only the champion is; for regression, when its absolute error is the smaller one. The
  exact McNemar / Wilcoxon p-value of the window is still shown, as a description.
* **Promote or stop** by the always-valid sequential test of the challenger's experiment
  (lifecycle.decisions.live_test, .sequential): the pairs of every window since the challenger
  started accumulate, and the test promotes when its likelihood ratio for "better" reaches
  1/MLOPS_LIVE_ALPHA, and stops the challenger (its alias is dropped, so canary traffic stops)
  when the ratio for "worse" does. Looking after every window keeps P(promoting a challenger
  that is not better) <= MLOPS_LIVE_ALPHA.
* **Roll back** the champion to `previous` when the 95 % interval of its live primary metric
  lay wholly outside MLOPS_MIN_METRIC / MLOPS_MAX_METRIC in each of the last
  MLOPS_ROLLBACK_AFTER_WINDOWS reports: the interval, not the point estimate, so noise on a few
  labels does not roll a good champion back.

Each decision is acted on only when its switch allows (MLOPS_AUTO_PROMOTE, default false;
MLOPS_AUTO_ROLLBACK, default true, also covers stopping a harmful challenger), and then emits its
Prefect event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lifecycle.core import events
from lifecycle.core.settings import LOWER_IS_BETTER, Settings, Task
from lifecycle.decisions import checks, live_test, sequential
from lifecycle.decisions.live_test import LiveExperiment, PairedCounts
from lifecycle.model.roc_auc import roc_auc_interval
from lifecycle.stores import registry

BOOTSTRAP = 200  # resamples for the interval of a metric other than accuracy


@dataclass(frozen=True)
class LiveMetric:
    """One version's live primary metric on its labelled rows, with a 95 % interval."""

    version: str
    rows: int
    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class PairedTest:
    """Champion vs shadow challenger on the same labelled rows."""

    champion: str
    challenger: str
    pairs: int
    test: str  # "mcnemar-exact" | "wilcoxon"
    p_value: float
    champion_metric: float | None
    challenger_metric: float | None
    champion_wins: int  # discordant pairs the champion got right (McNemar's b)
    challenger_wins: int  # ... the challenger got right (c)
    # Why the challenger is degenerate on these rows (lifecycle.decisions.checks), if it is:
    # more accurate than a champion gone wrong is not enough to be crowned.
    challenger_degenerate: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    """What live evidence says to do, whether it was done, and why (one sentence)."""

    action: str  # "promote" | "rollback" | "none"
    version: str | None  # the version that becomes champion
    acted: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mcnemar(champion_correct: Sequence[bool], challenger_correct: Sequence[bool]) -> tuple:
    """(b, c, exact two-sided p-value) of paired correct/incorrect outcomes."""
    from scipy.stats import binomtest

    a, s = np.asarray(champion_correct, bool), np.asarray(challenger_correct, bool)
    b, c = int(np.sum(a & ~s)), int(np.sum(~a & s))
    p = binomtest(c, b + c, 0.5).pvalue if b + c else 1.0
    return b, c, float(p)


def paired_errors(champion_error: Sequence[float], challenger_error: Sequence[float]) -> tuple:
    """(rows where the champion erred less, where the challenger did, Wilcoxon p-value)."""
    from scipy.stats import wilcoxon

    a, s = np.abs(np.asarray(champion_error, float)), np.abs(np.asarray(challenger_error, float))
    b, c = int(np.sum(a < s)), int(np.sum(s < a))
    p = float(wilcoxon(a, s).pvalue) if b + c else 1.0
    return b, c, p


def live_metric(
    version: str,
    task: Task,
    metric: str,
    actual: Sequence[Any],
    predicted: Sequence[Any],
    scores: Sequence[float] | None = None,
    positive: Sequence[bool] | None = None,
) -> LiveMetric:
    """The primary metric of one version on its labelled rows, with a 95 % interval (Wilson for
    accuracy, DeLong for ROC AUC from `scores`, the positive class's logged probabilities, and
    `positive`, the label is that class; a seeded bootstrap otherwise)."""
    y, p = np.asarray(actual), np.asarray(predicted)
    n = len(y)
    if n == 0:
        return LiveMetric(version, 0, None, None, None)
    if metric == "roc_auc":
        auc, low, high = _roc_auc(scores, positive)
        found = np.isfinite(auc)
        return LiveMetric(version, n, *((auc, low, high) if found else (None, None, None)))
    value = _metric(task, metric, y, p)
    if metric == "accuracy":
        from scipy.stats import binomtest

        hits = int(np.sum(y == p))
        interval = binomtest(hits, n).proportion_ci(0.95, method="wilson")
        low, high = float(interval.low), float(interval.high)
    else:
        rng = np.random.default_rng(0)
        draws = [_metric(task, metric, y[i], p[i]) for i in rng.integers(0, n, (BOOTSTRAP, n))]
        low, high = (float(v) for v in np.percentile(draws, [2.5, 97.5]))
    return LiveMetric(version, n, value, low, high)


def paired_test(
    champion: str,
    challenger: str,
    task: Task,
    metric: str,
    actual: Sequence[Any],
    champion_predicted: Sequence[Any],
    challenger_predicted: Sequence[Any],
    scores: tuple[Sequence[float], Sequence[float]] | None = None,
    positive: Sequence[bool] | None = None,
) -> PairedTest:
    """McNemar (classification) or Wilcoxon on absolute errors (regression) over the pairs;
    `scores`: (champion's, challenger's) positive-class probabilities (ROC AUC, the live check)."""
    y = np.asarray(actual)
    a, s = np.asarray(champion_predicted), np.asarray(challenger_predicted)
    if task == "regression":
        b, c, p = paired_errors(a.astype(float) - y, s.astype(float) - y)
        test = "wilcoxon"
    else:
        b, c, p = mcnemar(a == y, s == y)
        test = "mcnemar-exact"
    if metric == "roc_auc":
        found = [_roc_auc(x, positive)[0] for x in (scores or (None, None))]
        values = [float(v) if np.isfinite(v) else None for v in found]
    else:
        values = [_metric(task, metric, y, x) if len(y) else None for x in (a, s)]
    refused = checks.live_degenerate_reasons(task, y, s, scores and scores[1], positive)
    return PairedTest(champion, challenger, len(y), test, p, values[0], values[1], b, c, refused)


def paired_counts(test: PairedTest) -> PairedCounts:
    """The window's pairs as the sequential test counts them (from the challenger's side)."""
    wins, losses = test.challenger_wins, test.champion_wins
    return PairedCounts(test.champion, test.challenger, wins, losses, test.pairs - wins - losses)


def live_decision(
    experiment: LiveExperiment | None, settings: Settings, degenerate: Sequence[str] = ()
) -> Decision:
    """Promote, stop or keep going, as the challenger's sequential test says; a challenger
    `degenerate` on the window's rows is never promoted, whatever the test says."""
    if experiment is None:
        return Decision("none", None, False, "no shadow challenger in the window")
    figures = live_test.summary(experiment)
    decision, version = experiment.state.decision, experiment.challenger
    if decision == sequential.PROMOTE and degenerate:
        why = f"not promoted: v{version} is degenerate on the live rows ({'; '.join(degenerate)})"
        return Decision("none", None, False, f"{why}; {figures}")
    if decision == sequential.PROMOTE:
        acted = settings.auto_promote
        verb = "promoted" if acted else "would promote (MLOPS_AUTO_PROMOTE=false)"
        return Decision("promote", version, acted, f"{verb} v{version}: better, {figures}")
    if decision == sequential.STOP_HARM:
        acted = settings.auto_rollback
        verb = "stopped" if acted else "would stop (MLOPS_AUTO_ROLLBACK=false)"
        return Decision("stop", version, acted, f"{verb} v{version}: worse, {figures}")
    return Decision("none", None, False, f"no decision yet: {figures}")


def rollback(
    champion: str,
    history: Sequence[tuple[str, LiveMetric | None]],
    task: Task,
    settings: Settings,
) -> Decision:
    """Roll back when the 95 % interval of the champion's live metric lay wholly outside the
    bounds in each of the last MLOPS_ROLLBACK_AFTER_WINDOWS reports. `history`: (version, its
    live metric), newest first.

    Two windows by default, although each interval already accounts for noise: a 95 % interval
    misses the truth in 1 window in 40, so a champion that sits at the bound would be rolled back
    every 40 windows (5 days at a report every 3 hours) on one; two in a row make that 1 in 1,600,
    and a drop that lasts is what a rollback is for."""
    windows = settings.rollback_after_windows
    low, high = settings.metric_bounds(task)
    recent = list(history[:windows])
    outside = [
        metric is not None
        and metric.value is not None
        and (
            (low is not None and metric.high is not None and metric.high < low)
            or (high is not None and metric.low is not None and metric.low > high)
        )
        for version, metric in recent
        if version == champion
    ]
    shown = ", ".join(_interval(m) for _, m in recent)
    if len(outside) < windows or not all(outside):
        why = f"champion v{champion} live metric {shown or 'n/a'}: not wholly outside the bounds"
        return Decision("none", None, False, why)
    bounds = f"[{_fmt(low)}, {_fmt(high)}]"
    acted = settings.auto_rollback
    verb = "rolled back" if acted else "would roll back (MLOPS_AUTO_ROLLBACK=false)"
    reason = f"{verb} v{champion}: live metric {shown} wholly outside {bounds}, {windows} reports"
    return Decision("rollback", None, acted, reason)


def act(decision: Decision, champion: str, settings: Settings) -> Decision:
    """Move the aliases for an allowed decision and emit its event; returns it (with the new
    champion's version for a rollback)."""
    if not decision.acted or decision.action == "none":
        return decision
    if decision.action == "promote":
        registry.promote(decision.version, settings)
        event, version = events.CHALLENGER_PROMOTED, str(decision.version)
    elif decision.action == "stop":
        # The challenger's alias goes: its holder in the API lets it go, so canary traffic
        # stops and the shadow stops scoring.
        registry.remove_alias(settings.shadow_alias or registry.CHALLENGER, settings)
        payload = {"champion": champion, "challenger": str(decision.version)}
        payload |= {"model_name": settings.model_name, "reason": decision.reason}
        events.emit(events.CHALLENGER_STOPPED, settings.model_name, decision.version, payload)
        return decision
    else:
        try:
            version = registry.rollback(None, settings)
        except Exception as exc:  # no `previous` version: nothing to roll back to
            return Decision("none", None, False, f"{decision.reason}, but {exc}")
        event = events.CHAMPION_ROLLED_BACK
        decision = Decision("rollback", version, True, f"{decision.reason} to v{version}")
    events.emit(
        event,
        settings.model_name,
        version,
        {
            "model_name": settings.model_name,
            "from_version": champion,
            "to_version": version,
            "reason": decision.reason,
        },
    )
    return decision


def _metric(task: Task, metric: str, y: np.ndarray, p: np.ndarray) -> float:
    if task == "regression":
        error = p.astype(float) - y.astype(float)
        return float(np.sqrt(np.mean(error**2)) if metric != "mae" else np.mean(np.abs(error)))
    if metric in LOWER_IS_BETTER:  # a classifier's lower-is-better metric needs probabilities
        return float(np.mean(y != p))
    return float(np.mean(y == p))


def _roc_auc(
    scores: Sequence[float] | None, positive: Sequence[bool] | None
) -> tuple[float, float, float]:
    """(AUC, low, high) on the rows with a score; NaNs without scores or with a single class."""
    if scores is None or positive is None:
        return float("nan"), float("nan"), float("nan")
    return roc_auc_interval(positive, scores)


def _interval(metric: LiveMetric | None) -> str:
    if metric is None or metric.value is None:
        return "n/a"
    return f"{metric.value:.4f} [{_fmt(metric.low)}, {_fmt(metric.high)}]"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
