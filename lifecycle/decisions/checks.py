"""Checks the quality gate runs before it compares a candidate with the champion: pure functions
on numpy arrays.

* **Degenerate models** (`degenerate_reasons`): a candidate can beat a weak champion on the
  primary metric and still have learned nothing, or the wrong thing. Each check names itself:
  single-class (or constant) predictions; zero recall on a class with enough support; and two
  tests of association between predictions and truth whose null is "the model has no skill",
  so a model refused there cannot be told apart from a blind guess on this data:
  - labels, classification: Cohen's kappa against 0 with its variance under independence
    (Fleiss, Cohen and Everitt, Psychological Bulletin 72, 1969). Kappa > 0 means agreement
    above what the two label distributions give by chance (binary: recall above the false
    positive rate); kappa significantly < 0 is worse than chance, e.g. inverted labels;
  - probabilities, binary: ROC AUC against 0.5 with the one-sided Mann-Whitney test, of which
    AUC = U / (n1 n0) is the statistic, so its null is exactly "scores independent of labels".
    With probabilities this test alone must show skill at ALPHA, and kappa need only be above 0:
    the level still holds, and a model with skill is shown to have it on fewer rows
    (bench/bench_gate.py measures both);
  - regression: R² <= 0 (no better than predicting the split's mean), and the Spearman
    correlation of predictions with the target against 0.
  A constant or majority-class predictor, inverted labels and a random predictor are each
  refused; a model with skill passes once the rows can show it (ROC AUC 0.8 at 15 %
  positives: 90 % of the time on 86 rows, always from 500).
* **Paired comparison** (`paired_bootstrap_interval`): metric(candidate) - metric(champion) on
  the same rows, with a seeded percentile bootstrap that resamples rows once per round for both.
* **Guardrails** (`non_inferiority`, `guardrail_failures`): secondary metrics the candidate may
  not lose beyond a tolerance while it wins on the primary one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ALPHA = 0.01  # level of the no-skill tests: a blind guess passes them 1 time in 100
MIN_SUPPORT = 20  # zero recall on s rows has probability (1 - r)^s for a recall r: 0.04 at
# r = 0.15, s = 20, so below that a class's zero recall may be bad luck, not degeneracy
GUARDRAILS = {
    "binary": ("f1", "roc_auc", "log_loss"),
    "multiclass": ("f1", "roc_auc", "log_loss"),
    "regression": ("mae", "r2"),
}
HIGHER_IS_BETTER = {
    "accuracy": True,
    "balanced_accuracy": True,
    "f1": True,
    "mcc": True,
    "roc_auc": True,
    "r2": True,
    "log_loss": False,
    "mae": False,
    "rmse": False,
}
_CHUNK = 2_000_000  # resampled row indices drawn at once: 16 MB


def degenerate_reasons(
    task: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    classes: Sequence[Any] = (),
    proba: np.ndarray | None = None,
    *,
    alpha: float = ALPHA,
    min_support: int = MIN_SUPPORT,
) -> list[str]:
    """Why this model is degenerate on these rows, one reason per failed check (empty: none).
    `proba`: binary class probabilities, (n, 2) in `classes` order or the positive class's."""
    y, pred = np.asarray(y_true), np.asarray(y_pred)
    if task == "regression":
        return _regression_reasons(y.astype(float), pred.astype(float), alpha)
    labels = list(classes) if len(classes) else sorted(set(np.unique(y)) | set(np.unique(pred)))
    reasons = _label_reasons(y, pred, labels, min_support)
    scored = task == "binary" and proba is not None and len(labels) == 2
    # One test carries the burden of showing skill: ROC AUC's when there are probabilities (the
    # binary primary metric's own test), kappa's otherwise. Asking both to reach `alpha` would
    # hold a useless model to far less than `alpha` and cost a model with skill its power on
    # few rows (bench/bench_gate.py); with probabilities, the answers' kappa must still be
    # above 0 (answers no better than chance are refused), tested at one half: its sign.
    reasons += _kappa_reasons(y, pred, labels, alpha, skill_alpha=0.5 if scored else alpha)
    if scored:
        scores = np.asarray(proba, float)
        scores = scores[:, 1] if scores.ndim == 2 else scores
        reasons += _auc_reasons(y == labels[1], scores, alpha)
    return reasons


def live_degenerate_reasons(
    task: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    scores: Sequence[float] | None = None,
    positive: Sequence[bool] | None = None,
) -> list[str]:
    """`degenerate_reasons` of a live challenger on a window's labelled rows, with its logged
    positive-class probabilities when every row has one and they refer to the class the
    battery calls positive (`positive`: the label is the model's positive class). ROC AUC's
    test then carries the burden of showing skill, as at the gate, instead of the answers'
    kappa at ALPHA, which a skilled challenger misses on a small window's labels."""
    y, pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y) == 0:
        return []
    proba = None
    if task == "binary" and scores is not None and positive is not None:
        x = np.asarray(scores, dtype=float)
        labels = sorted(set(np.unique(y)) | set(np.unique(pred)))  # as degenerate_reasons does
        same = len(labels) == 2 and np.array_equal(y == labels[1], np.asarray(positive, bool))
        proba = x if same and np.isfinite(x).all() else None
    return degenerate_reasons(task, y, pred, (), proba)


def _label_reasons(
    y: np.ndarray, pred: np.ndarray, labels: list[Any], min_support: int
) -> list[str]:
    """Single-class predictions, and zero recall on each class with `min_support` rows."""
    reasons = []
    present = [c for c in labels if np.any(y == c)]
    predicted = np.unique(pred)
    if len(predicted) == 1 and len(present) > 1:
        reasons.append(
            f"single-class predictions: every row predicted {predicted[0]} while classes "
            f"{_join(present)} are present"
        )
    for c in present:
        support = int(np.sum(y == c))
        if support >= min_support and not np.any(pred[y == c] == c):
            reasons.append(f"zero recall on class {c} (support {support})")
    return reasons


def _kappa_reasons(
    y: np.ndarray, pred: np.ndarray, labels: list[Any], alpha: float, skill_alpha: float
) -> list[str]:
    """Cohen's kappa against 0 (Fleiss, Cohen and Everitt 1969): worse than chance (one-sided
    at `alpha`), or no skill shown (one-sided at `skill_alpha`; 0.5 refuses kappa <= 0)."""
    from scipy.stats import norm

    n = len(y)
    if n == 0 or len(np.unique(y)) < 2 or len(np.unique(pred)) < 2:
        return []  # kappa is 0 by construction; the single-class check speaks instead
    truth = np.array([np.mean(y == c) for c in labels])
    guess = np.array([np.mean(pred == c) for c in labels])
    observed, chance = float(np.mean(y == pred)), float(truth @ guess)
    kappa = (observed - chance) / (1 - chance)
    null_var = (chance + chance**2 - float(np.sum(truth * guess * (truth + guess)))) / (
        n * (1 - chance) ** 2
    )
    z = kappa / math.sqrt(null_var)
    if norm.cdf(z) < alpha:
        return [
            f"worse than chance: Cohen's kappa {kappa:.2f} < 0 (z = {z:.1f}): predictions "
            f"disagree with the labels more than independent guesses would, e.g. inverted labels"
        ]
    if (p := float(norm.sf(z))) >= skill_alpha:
        return [
            f"no skill: Cohen's kappa {kappa:.2f} is not above 0 "
            f"(one-sided p = {p:.2g} >= {skill_alpha:g})"
        ]
    return []


def _auc_reasons(positive: np.ndarray, scores: np.ndarray, alpha: float) -> list[str]:
    """ROC AUC against 0.5 by the one-sided Mann-Whitney test (AUC = U / (n1 n0))."""
    from scipy.stats import mannwhitneyu

    pos, neg = scores[positive], scores[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return []
    better = mannwhitneyu(pos, neg, alternative="greater")
    auc = float(better.statistic) / (len(pos) * len(neg))
    if auc < 0.5 and (p := float(mannwhitneyu(pos, neg, alternative="less").pvalue)) < alpha:
        return [f"worse than chance: ROC AUC {auc:.2f} < 0.5 (one-sided Mann-Whitney p = {p:.2g})"]
    if (p := float(better.pvalue)) >= alpha:
        return [
            f"no skill: ROC AUC {auc:.2f} is not above 0.5 "
            f"(one-sided Mann-Whitney p = {p:.2g} >= {alpha:g})"
        ]
    return []


def _regression_reasons(y: np.ndarray, pred: np.ndarray, alpha: float) -> list[str]:
    """Constant predictions, R² <= 0, and Spearman correlation with the target against 0."""
    from scipy.stats import spearmanr

    if len(y) < 3 or np.ptp(y) == 0:
        return []
    if np.ptp(pred) == 0:
        return [f"constant predictions: every row predicted {pred[0]:.4g} while the target varies"]
    reasons = []
    r2 = 1 - float(np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))
    if r2 <= 0:
        reasons.append(f"no better than the mean: R² = {r2:.2f} <= 0")
    rho = float(spearmanr(pred, y).statistic)
    if rho < 0 and (p := float(spearmanr(pred, y, alternative="less").pvalue)) < alpha:
        reasons.append(f"worse than chance: Spearman correlation {rho:.2f} < 0 (p = {p:.2g})")
    elif (p := float(spearmanr(pred, y, alternative="greater").pvalue)) >= alpha:
        reasons.append(
            f"no skill: Spearman correlation {rho:.2f} with the target is not above 0 "
            f"(one-sided p = {p:.2g} >= {alpha:g})"
        )
    return reasons


@dataclass(frozen=True)
class RowMean:
    """A metric that is the mean of a per-row score (accuracy, absolute or squared error).
    `paired_bootstrap_interval` vectorises its rounds: each is a mean of resampled per-row
    differences instead of two metric calls."""

    per_row: Callable[[np.ndarray, np.ndarray], np.ndarray]

    def __call__(self, y_true: np.ndarray, pred: np.ndarray) -> float:
        return float(np.mean(self.per_row(np.asarray(y_true), np.asarray(pred))))


accuracy = RowMean(lambda y, p: (y == p).astype(float))
mean_absolute_error = RowMean(lambda y, p: np.abs(y.astype(float) - p.astype(float)))
mean_squared_error = RowMean(lambda y, p: (y.astype(float) - p.astype(float)) ** 2)


def paired_bootstrap_interval(
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    *,
    rounds: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(diff, low, high): metric(b) - metric(a) on all rows and its percentile bootstrap
    interval; each round resamples row indices once and scores both on them (rows are assumed
    independent). Seeded: the same inputs give the same interval."""
    y, a, b = np.asarray(y_true), np.asarray(pred_a), np.asarray(pred_b)
    n = len(y)
    if n == 0 or len(a) != n or len(b) != n:
        raise ValueError(f"need the same nonzero number of rows, got {n}, {len(a)}, {len(b)}")
    diff = metric_fn(y, b) - metric_fn(y, a)
    rng = np.random.default_rng(seed)
    chunk = max(1, min(rounds, _CHUNK // n))
    draws = []
    if isinstance(metric_fn, RowMean):
        delta = metric_fn.per_row(y, b) - metric_fn.per_row(y, a)
    for start in range(0, rounds, chunk):
        index = rng.integers(0, n, size=(min(chunk, rounds - start), n))
        if isinstance(metric_fn, RowMean):
            draws.append(delta[index].mean(axis=1))
        else:
            draws.append([metric_fn(y[i], b[i]) - metric_fn(y[i], a[i]) for i in index])
    low, high = np.quantile(np.concatenate(draws), [(1 - level) / 2, (1 + level) / 2])
    return float(diff), float(low), float(high)


def non_inferiority(diff_low: float, tolerance: float) -> bool:
    """Non-inferior: the lower end of the interval of (candidate - champion), oriented so that
    positive is better, is at or above -tolerance."""
    if tolerance < 0:
        raise ValueError(f"tolerance must be nonnegative, got {tolerance}")
    return diff_low >= -tolerance


def guardrail_failures(
    candidate_metrics: Mapping[str, float],
    champion_metrics: Mapping[str, float],
    tolerances: Mapping[str, float],
    higher_is_better: Mapping[str, bool] = HIGHER_IS_BETTER,
) -> list[str]:
    """One sentence per guardrail metric (the keys of `tolerances`) on which the candidate is
    worse than the champion by more than its tolerance. A metric either side lacks (ROC AUC on
    a one-class split) is skipped; a candidate's NaN against a number fails."""
    failures = []
    for name, tolerance in tolerances.items():
        value, reference = candidate_metrics.get(name), champion_metrics.get(name)
        if value is None or reference is None or math.isnan(reference):
            continue
        if name not in higher_is_better:
            raise ValueError(f"no direction for metric {name!r}: add it to higher_is_better")
        shortfall = reference - value if higher_is_better[name] else value - reference
        if math.isnan(value) or shortfall > tolerance:
            failures.append(
                f"{name} {value:.4f} is worse than the champion's {reference:.4f} beyond "
                f"tolerance {tolerance:.4f}"
            )
    return failures


def _join(items: Sequence[Any]) -> str:
    names = [str(item) for item in items]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
