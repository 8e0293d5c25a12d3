"""The gate's checks (lifecycle.decisions.checks): the degenerate-model battery, the paired
bootstrap, the guardrails, and why the binary primary metric should not be accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom
from sklearn import metrics as skm

from lifecycle.decisions.checks import (
    accuracy,
    degenerate_reasons,
    guardrail_failures,
    mean_absolute_error,
    non_inferiority,
    paired_bootstrap_interval,
)

N = 400


def _binary(seed: int = 0, positives: float = 0.3, n: int = N, strength: float = 2.5):
    """Labels, and a model with skill: P(positive) from a noisy score (ROC AUC ~0.9-0.97)."""
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=n) < positives).astype(int)
    proba = 1 / (1 + np.exp(-(strength * (2 * y - 1) + rng.normal(0, 1.5, n) - 0.8)))
    return y, (proba >= 0.5).astype(int), np.column_stack([1 - proba, proba])


def test_a_binary_model_with_skill_passes_every_check() -> None:
    y, pred, proba = _binary()
    assert degenerate_reasons("binary", y, pred, [0, 1], proba) == []


def test_a_constant_predictor_is_refused() -> None:
    y, _, _ = _binary()
    reasons = degenerate_reasons("binary", y, np.ones(N, int), [0, 1], np.full(N, 0.5))
    assert reasons[0] == (
        "single-class predictions: every row predicted 1 while classes 0 and 1 are present"
    )
    assert f"zero recall on class 0 (support {np.sum(y == 0)})" in reasons
    assert any(r.startswith("no skill: ROC AUC 0.50 is not above 0.5") for r in reasons)


def test_a_majority_class_predictor_is_refused() -> None:
    y, _, _ = _binary()
    reasons = degenerate_reasons("binary", y, np.zeros(N, int), [0, 1], np.full(N, y.mean()))
    assert "single-class predictions: every row predicted 0" in reasons[0]
    assert f"zero recall on class 1 (support {np.sum(y == 1)})" in reasons


def test_inverted_labels_are_worse_than_chance() -> None:
    y, pred, proba = _binary()
    reasons = degenerate_reasons("binary", y, 1 - pred, [0, 1], proba[:, ::-1])
    assert any(r.startswith("worse than chance: Cohen's kappa -0.") for r in reasons)
    assert any(r.startswith("worse than chance: ROC AUC 0.0") for r in reasons)


def test_a_random_predictor_has_no_skill() -> None:
    y, _, _ = _binary()
    rng = np.random.default_rng(1)
    proba = rng.uniform(size=N)
    reasons = degenerate_reasons("binary", y, (proba >= 0.5).astype(int), [0, 1], proba)
    assert any(r.startswith("no skill: Cohen's kappa") for r in reasons)
    assert any(r.startswith("no skill: ROC AUC") for r in reasons)


def test_with_probabilities_roc_auc_carries_the_burden_and_kappa_needs_only_its_sign() -> None:
    # 20 positives scored above 20 negatives: ROC AUC 1, Mann-Whitney p far below 0.01. Answers:
    # 1 on 11 of the positives and 9 of the negatives. By hand: observed agreement 22/40 = 0.55,
    # chance 0.5 x 0.5 + 0.5 x 0.5 = 0.5, kappa 0.1; null variance (0.5 + 0.25 - 2 x 0.25 x 1) /
    # (40 x 0.25) = 0.025, z = 0.1 / 0.158 = 0.632, one-sided p = 0.264.
    y = np.r_[np.ones(20, int), np.zeros(20, int)]
    scores = np.r_[np.linspace(0.6, 0.99, 20), np.linspace(0.01, 0.4, 20)]
    answers = np.r_[np.ones(11, int), np.zeros(9, int), np.ones(9, int), np.zeros(11, int)]
    assert degenerate_reasons("binary", y, answers, [0, 1], scores) == []
    # Without probabilities kappa alone must show skill at 0.01, and p = 0.264 does not.
    assert degenerate_reasons("binary", y, answers, [0, 1]) == [
        "no skill: Cohen's kappa 0.10 is not above 0 (one-sided p = 0.26 >= 0.01)"
    ]
    # Answers below chance (kappa -0.1, p = 0.74) are refused even with perfectly ranked scores.
    assert degenerate_reasons("binary", y, 1 - answers, [0, 1], scores) == [
        "no skill: Cohen's kappa -0.10 is not above 0 (one-sided p = 0.74 >= 0.5)"
    ]


def test_labels_alone_are_checked_without_probabilities() -> None:
    y, pred, _ = _binary()
    assert degenerate_reasons("binary", y, pred, [0, 1]) == []
    assert "worse than chance" in degenerate_reasons("binary", y, 1 - pred, [0, 1])[0]


def test_zero_recall_on_a_rare_class_needs_enough_support() -> None:
    y = np.array([0] * 90 + [1] * 10)
    pred = np.array([0] * 89 + [1] + [0] * 10)  # misses all ten positives
    assert not any("zero recall" in r for r in degenerate_reasons("binary", y, pred, [0, 1]))
    reasons = degenerate_reasons("binary", y, pred, [0, 1], min_support=10)
    assert "zero recall on class 1 (support 10)" in reasons


def test_multiclass_majority_and_random_are_refused_and_skill_passes() -> None:
    rng = np.random.default_rng(2)
    y = rng.choice(["a", "b", "c"], size=N, p=[0.5, 0.3, 0.2])
    skilled = np.where(rng.uniform(size=N) < 0.7, y, rng.choice(["a", "b", "c"], size=N))
    assert degenerate_reasons("multiclass", y, skilled, ["a", "b", "c"]) == []
    majority = degenerate_reasons("multiclass", y, np.full(N, "a"), ["a", "b", "c"])
    assert majority[0].endswith("every row predicted a while classes a, b and c are present")
    random = degenerate_reasons("multiclass", y, rng.choice(["a", "b", "c"], N), ["a", "b", "c"])
    assert random[0].startswith("no skill: Cohen's kappa")


def test_regression_battery() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(10, 2, N)
    assert degenerate_reasons("regression", y, y + rng.normal(0, 1, N), ()) == []
    constant = degenerate_reasons("regression", y, np.full(N, 10.0), ())
    assert constant == ["constant predictions: every row predicted 10 while the target varies"]
    inverted = degenerate_reasons("regression", y, 20 - y, ())
    assert inverted[0] == "no better than the mean: R² = -3.00 <= 0"
    assert inverted[1].startswith("worse than chance: Spearman correlation -1.00 < 0")
    random = degenerate_reasons("regression", y, rng.normal(10, 2, N), ())
    assert random[0].startswith("no better than the mean: R² = -")
    assert random[1].startswith("no skill: Spearman correlation")


def test_paired_bootstrap_by_hand() -> None:
    # 100 rows, the challenger right and the champion wrong on 20, both right on 80: the
    # difference in accuracy is 0.2 and each resample's is Binomial(100, 0.2) / 100, whose
    # 2.5 % and 97.5 % quantiles are 0.12 and 0.28.
    y = np.ones(100, int)
    champion, challenger = np.r_[np.zeros(20, int), np.ones(80, int)], np.ones(100, int)
    diff, low, high = paired_bootstrap_interval(accuracy, y, champion, challenger, rounds=4000)
    assert diff == pytest.approx(0.2)
    assert binom.ppf(0.025, 100, 0.2) / 100 == 0.12 and binom.ppf(0.975, 100, 0.2) / 100 == 0.28
    assert low == pytest.approx(0.12, abs=0.011) and high == pytest.approx(0.28, abs=0.011)


def test_paired_bootstrap_identical_models_differ_by_exactly_zero() -> None:
    y, pred, _ = _binary()
    assert paired_bootstrap_interval(accuracy, y, pred, pred.copy()) == (0.0, 0.0, 0.0)


def _two_models(n: int, seed: int = 4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    champion = np.where(rng.uniform(size=n) < 0.75, y, 1 - y)
    challenger = np.where(rng.uniform(size=n) < 0.82, y, 1 - y)
    return y, champion, challenger


def test_paired_bootstrap_is_inconclusive_on_few_rows_and_conclusive_on_many() -> None:
    _, low, high = paired_bootstrap_interval(accuracy, *_two_models(30))
    assert low < 0 < high
    diff, low, high = paired_bootstrap_interval(accuracy, *_two_models(5_000))
    assert 0 < low < diff < high and diff == pytest.approx(0.07, abs=0.02)


def test_paired_bootstrap_is_seeded_and_the_fast_path_matches_the_general_one() -> None:
    rows = _two_models(300)
    first = paired_bootstrap_interval(accuracy, *rows, rounds=200, seed=11)
    assert paired_bootstrap_interval(accuracy, *rows, rounds=200, seed=11) == first
    assert paired_bootstrap_interval(accuracy, *rows, rounds=200, seed=12) != first
    general = paired_bootstrap_interval(skm.accuracy_score, *rows, rounds=200, seed=11)
    assert general == pytest.approx(first, abs=1e-12)


def test_paired_bootstrap_of_a_lower_is_better_metric() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(size=2_000)
    worse, better = y + rng.normal(0, 1.0, 2_000), y + rng.normal(0, 0.8, 2_000)
    diff, low, high = paired_bootstrap_interval(mean_absolute_error, y, worse, better)
    assert low <= diff <= high < 0  # the second model's error is lower
    assert non_inferiority(-high, 0.0) and not non_inferiority(low, 0.0)


def test_non_inferiority_compares_the_lower_end_with_the_tolerance() -> None:
    assert non_inferiority(-0.004, 0.005) and non_inferiority(-0.005, 0.005)
    assert not non_inferiority(-0.006, 0.005)
    with pytest.raises(ValueError, match="nonnegative"):
        non_inferiority(0.0, -0.1)


def test_guardrail_failures_name_each_metric_lost_beyond_its_tolerance() -> None:
    champion = {"f1": 0.80, "roc_auc": 0.90, "log_loss": 0.40, "accuracy": 0.85}
    candidate = {"f1": 0.795, "roc_auc": 0.87, "log_loss": 0.45, "accuracy": 0.70}
    tolerances = {"f1": 0.01, "roc_auc": 0.01, "log_loss": 0.02}
    assert guardrail_failures(candidate, champion, tolerances) == [
        "roc_auc 0.8700 is worse than the champion's 0.9000 beyond tolerance 0.0100",
        "log_loss 0.4500 is worse than the champion's 0.4000 beyond tolerance 0.0200",
    ]
    regression = guardrail_failures({"mae": 1.0, "r2": 0.5}, {"r2": 0.6}, {"mae": 0.1, "r2": 0.05})
    assert regression == ["r2 0.5000 is worse than the champion's 0.6000 beyond tolerance 0.0500"]
    with pytest.raises(ValueError, match="no direction"):
        guardrail_failures({"brier": 0.2}, {"brier": 0.1}, {"brier": 0.0})


def test_accuracy_ranks_a_majority_predictor_above_skill_but_auc_balanced_accuracy_mcc_do_not():
    """The default binary primary metric: on a 90/10 split, always predicting the majority
    beats a model with real skill on accuracy; ROC AUC, balanced accuracy and MCC give the
    majority predictor chance level (0.5, 0.5, 0) and rank the model above it. Log loss ranks a
    constant base-rate predictor above the same model when the model is overconfident."""
    y, _, proba = _binary(seed=6, positives=0.1, n=2_000, strength=1.5)
    pred = (proba[:, 1] >= 0.3).astype(int)  # a threshold tuned for recall
    majority, base_rate = np.zeros_like(y), np.full(len(y), y.mean())
    assert skm.accuracy_score(y, majority) > skm.accuracy_score(y, pred)
    assert skm.roc_auc_score(y, base_rate) == 0.5 < skm.roc_auc_score(y, proba[:, 1])
    assert skm.balanced_accuracy_score(y, majority) == 0.5 < skm.balanced_accuracy_score(y, pred)
    assert skm.matthews_corrcoef(y, majority) == 0.0 < skm.matthews_corrcoef(y, pred)
    overconfident = np.clip(proba[:, 1] ** 0.1 * (proba[:, 1] > 0.3), 1e-6, 1 - 1e-6)
    assert skm.roc_auc_score(y, overconfident) > 0.5
    assert skm.log_loss(y, base_rate) < skm.log_loss(y, overconfident)
