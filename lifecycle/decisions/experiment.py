"""Live experiments: per-version live metrics, the paired test of a shadow challenger against the
champion, and the two decisions taken on live evidence (README "Shadow and canary").

* **Paired test.** A shadow scores the same labelled rows as the champion, so each row is a pair
  of outcomes. For classification, the exact McNemar test: of the discordant pairs (one model
  right, the other wrong), b favour the champion and c the challenger; under "equally good" c is
  Binomial(b + c, 1/2), and the p-value is `scipy.stats.binomtest(c, b + c)` (two-sided). For
  regression, the Wilcoxon signed-rank test on the paired absolute errors.
* **Promote** the challenger when it has at least MLOPS_LIVE_MIN_PAIRED pairs, p <
  MLOPS_LIVE_ALPHA, it won more discordant pairs, and it is not worse on the primary metric.
* **Roll back** the champion to `previous` when its live primary metric was outside
  MLOPS_MIN_METRIC / MLOPS_MAX_METRIC in each of the last MLOPS_ROLLBACK_AFTER_WINDOWS reports.

Each decision is acted on only when its switch allows (MLOPS_AUTO_PROMOTE, default false;
MLOPS_AUTO_ROLLBACK, default true), and then emits its Prefect event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from lifecycle.core import events
from lifecycle.core.settings import LOWER_IS_BETTER, Settings, Task
from lifecycle.model.evaluation import is_better_or_equal
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
    version: str, task: Task, metric: str, actual: Sequence[Any], predicted: Sequence[Any]
) -> LiveMetric:
    """The primary metric of one version on its labelled rows, with a 95 % interval (Wilson for
    accuracy, a seeded bootstrap otherwise)."""
    y, p = np.asarray(actual), np.asarray(predicted)
    n = len(y)
    if n == 0:
        return LiveMetric(version, 0, None, None, None)
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
) -> PairedTest:
    """McNemar (classification) or Wilcoxon on absolute errors (regression) over the pairs."""
    y = np.asarray(actual)
    a, s = np.asarray(champion_predicted), np.asarray(challenger_predicted)
    if task == "regression":
        b, c, p = paired_errors(a.astype(float) - y, s.astype(float) - y)
        test = "wilcoxon"
    else:
        b, c, p = mcnemar(a == y, s == y)
        test = "mcnemar-exact"
    values = [_metric(task, metric, y, x) if len(y) else None for x in (a, s)]
    return PairedTest(champion, challenger, len(y), test, p, values[0], values[1], b, c)


def promotion(test: PairedTest | None, settings: Settings) -> Decision:
    """Promote the shadow when the paired evidence says it is significantly better."""
    if test is None:
        return Decision("none", None, False, "no shadow challenger in the window")
    if test.pairs < settings.live_min_paired:
        minimum = settings.live_min_paired
        why = f"{test.pairs} paired labels, fewer than MLOPS_LIVE_MIN_PAIRED={minimum}"
        return Decision("none", None, False, why)
    metric_name = settings.primary_metric_override or (
        "rmse" if test.test == "wilcoxon" else "accuracy"
    )
    figures = (
        f"p={test.p_value:.4g} ({test.test}, {test.pairs} pairs, discordant "
        f"{test.challenger_wins} for v{test.challenger} / {test.champion_wins} for "
        f"v{test.champion}); live {metric_name} {_fmt(test.challenger_metric)} vs "
        f"{_fmt(test.champion_metric)}"
    )
    not_worse = (
        test.challenger_metric is not None
        and test.champion_metric is not None
        and is_better_or_equal(metric_name, test.challenger_metric, test.champion_metric, 0.0)
    )
    if test.p_value >= settings.live_alpha or test.challenger_wins <= test.champion_wins:
        return Decision("none", None, False, f"not significantly better: {figures}")
    if not not_worse:
        return Decision("none", None, False, f"worse on the primary metric: {figures}")
    acted = settings.auto_promote
    verb = "promoted" if acted else "would promote (MLOPS_AUTO_PROMOTE=false)"
    reason = f"{verb} v{test.challenger}: significantly better, {figures}"
    return Decision("promote", test.challenger, acted, reason)


def rollback(
    champion: str, history: Sequence[tuple[str, float | None]], task: Task, settings: Settings
) -> Decision:
    """Roll back when the champion's live metric was out of bounds in each of the last
    MLOPS_ROLLBACK_AFTER_WINDOWS reports. `history`: (version, live metric), newest first."""
    windows = settings.rollback_after_windows
    low, high = settings.metric_bounds(task)
    recent = list(history[:windows])
    outside = [
        value is not None
        and ((low is not None and value < low) or (high is not None and value > high))
        for version, value in recent
        if version == champion
    ]
    shown = ", ".join(_fmt(v) for _, v in recent)
    if len(outside) < windows or not all(outside):
        return Decision("none", None, False, f"champion v{champion} live metric {shown} in bounds")
    bounds = f"[{_fmt(low)}, {_fmt(high)}]"
    acted = settings.auto_rollback
    verb = "rolled back" if acted else "would roll back (MLOPS_AUTO_ROLLBACK=false)"
    reason = f"{verb} v{champion}: live metric {shown} outside {bounds} for {windows} reports"
    return Decision("rollback", None, acted, reason)


def act(decision: Decision, champion: str, settings: Settings) -> Decision:
    """Move the aliases for an allowed decision and emit its event; returns it (with the new
    champion's version for a rollback)."""
    if not decision.acted or decision.action == "none":
        return decision
    if decision.action == "promote":
        registry.promote(decision.version, settings)
        event, version = events.CHALLENGER_PROMOTED, str(decision.version)
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


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
