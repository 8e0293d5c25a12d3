"""The default binary primary metric (ROC AUC): why a majority-class model cannot outrank a model
with skill on it, DeLong's interval on a hand-computed case, and the live ROC AUC a report computes
from the probabilities logged with each answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from lifecycle.core.settings import Settings
from lifecycle.decisions import experiment
from lifecycle.model.evaluation import compute_metrics, loss
from lifecycle.model.predictor import FeatureSpec
from lifecycle.model.roc_auc import paired_roc_auc_interval, positive_scores, roc_auc_interval
from reporting.comparison import compare_pairs
from reporting.live import live_metrics_with_intervals
from reporting.window import LivePairs


def test_the_default_binary_metric_never_ranks_a_majority_class_model_above_one_with_skill() -> (
    None
):
    assert Settings().primary_metric("binary") == "roc_auc"
    assert Settings().primary_metric("regression") == "rmse"
    assert Settings(MLOPS_PRIMARY_METRIC="accuracy").primary_metric("binary") == "accuracy"
    rng = np.random.default_rng(3)
    y = (rng.random(5000) < 0.14).astype(int)  # the demo's 14 % churn
    # "Nobody churns": probability 0.14 for every row, so every answer is 0.
    majority = np.column_stack([np.full(len(y), 0.86), np.full(len(y), 0.14)])
    # A weak model with skill: its score rises with the label, plus much noise; at the 0.5
    # threshold it answers "churn" often and wrongly, so its accuracy is far below 0.86.
    score = np.clip(0.45 + 0.1 * y + rng.normal(0, 0.2, len(y)), 0, 1)
    skilled = np.column_stack([1 - score, score])
    m = compute_metrics("binary", y, np.zeros(len(y), int), majority, (0, 1))
    s = compute_metrics("binary", y, (score >= 0.5).astype(int), skilled, (0, 1))
    assert m["accuracy"] > 0.84 > s["accuracy"]  # accuracy would crown the majority model
    assert m["roc_auc"] == 0.5 < s["roc_auc"]  # ROC AUC does not
    assert loss("roc_auc", s["roc_auc"]) < loss("roc_auc", m["roc_auc"])  # the trial ranking


def test_delong_interval_on_a_hand_computed_case() -> None:
    # Positives score 0.9 and 0.6, negatives 0.6 and 0.2 (a tie at 0.6 counts one half):
    # pairs (0.9,0.6)=1, (0.9,0.2)=1, (0.6,0.6)=0.5, (0.6,0.2)=1, so AUC = 3.5 / 4 = 0.875.
    # Placements: V10 = [1, 0.75] (each positive's share of negatives below it), V01 = [0.75, 1];
    # var(V10) = var(V01) = 0.03125 (ddof 1), so Var(AUC) = 0.03125/2 + 0.03125/2 = 0.03125.
    # A row without a logged probability (NaN) is left out.
    auc, low, high = roc_auc_interval([1, 1, 0, 0, 1], [0.9, 0.6, 0.6, 0.2, np.nan])
    assert auc == 0.875
    assert low == pytest.approx(0.875 - 1.959964 * math.sqrt(0.03125), abs=1e-12)
    assert high == 1.0  # clipped
    assert all(math.isnan(v) for v in roc_auc_interval([1, 1], [0.2, 0.3]))  # one class


def test_delong_matches_sklearn_and_covers_the_truth() -> None:
    """Seeded Monte-Carlo: 400 samples of 300 rows from a binormal model whose true AUC is
    Φ(1/√2) = 0.7602; DeLong's 95 % interval covered it in 0.945 of them."""
    from scipy.stats import norm

    rng = np.random.default_rng(0)
    truth = float(norm.cdf(1 / math.sqrt(2)))
    covered = 0
    for _ in range(400):
        y = rng.random(300) < 0.3
        s = rng.normal(y.astype(float), 1.0)
        auc, low, high = roc_auc_interval(y, s)
        assert auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        covered += low <= truth <= high
    assert 0.93 <= covered / 400 <= 0.97


def test_paired_delong_interval_on_a_hand_computed_case() -> None:
    # Model a as above: placements V10 = [1, 0.75], V01 = [0.75, 1], AUC 0.875. Model b scores
    # the positives 0.8 and 0.3, the negatives 0.5 and 0.4: V10 = [1, 0] (0.3 is below both),
    # V01 = [0.5, 0.5], AUC 0.5. Row by row, d10 = [0, -0.75] (variance 0.28125, ddof 1) and
    # d01 = [-0.25, -0.5] (0.03125): Var(AUC_b - AUC_a) = 0.28125/2 + 0.03125/2 = 0.15625.
    positive = [1, 1, 0, 0]
    diff, low, high = paired_roc_auc_interval(positive, [0.9, 0.6, 0.6, 0.2], [0.8, 0.3, 0.5, 0.4])
    assert diff == -0.375
    assert (low, high) == pytest.approx(
        (-0.375 - 1.959964 * math.sqrt(0.15625), -0.375 + 1.959964 * math.sqrt(0.15625)), abs=1e-12
    )
    # The same model on both sides differs by exactly 0, with no spread.
    assert paired_roc_auc_interval(positive, [0.9, 0.6, 0.6, 0.2], [0.9, 0.6, 0.6, 0.2]) == (
        0.0,
        0.0,
        0.0,
    )


def test_paired_delong_interval_covers_the_true_difference() -> None:
    """Seeded Monte-Carlo: two models sharing half their noise (correlated scores) with true
    AUCs Φ(1/√2 · 1/1) and Φ(0.6/√2): 400 samples of 400 rows; the 95 % interval of the
    difference covered the true difference in 0.948 of them."""
    from scipy.stats import norm

    rng = np.random.default_rng(1)
    truth = float(norm.cdf(0.6 / math.sqrt(2)) - norm.cdf(1 / math.sqrt(2)))
    covered = 0
    for _ in range(400):
        y = rng.random(400) < 0.3
        shared = rng.normal(0, math.sqrt(0.5), 400)
        a = y + shared + rng.normal(0, math.sqrt(0.5), 400)
        b = 0.6 * y + shared + rng.normal(0, math.sqrt(0.5), 400)
        diff, low, high = paired_roc_auc_interval(y, a, b)
        assert diff == pytest.approx(roc_auc_score(y, b) - roc_auc_score(y, a), abs=1e-12)
        covered += low <= truth <= high
    assert 0.93 <= covered / 400 <= 0.97


def test_live_metrics_add_roc_auc_from_logged_probabilities() -> None:
    spec = FeatureSpec(target="churn", task="binary", features=(), classes=(0, 1))
    actual = np.asarray([1, 1, 0, 0, 1], dtype=object)
    predicted = np.asarray([1, 0, 1, 0, 1], dtype=object)
    logged = [{"0": 1 - p, "1": p} for p in (0.9, 0.6, 0.6, 0.2)]
    logged = np.asarray([*logged, None], dtype=object)  # the last: no probabilities logged
    assert np.isnan(positive_scores(logged, "1")[-1])
    metrics, intervals = live_metrics_with_intervals(spec, actual, predicted, logged)
    assert metrics["accuracy"] == 0.6
    assert metrics["roc_auc"] == 0.875
    assert intervals["roc_auc"] == list(roc_auc_interval([1, 1, 0, 0], [0.9, 0.6, 0.6, 0.2])[1:])
    metrics, _ = live_metrics_with_intervals(spec, actual, predicted)  # nothing logged
    assert "roc_auc" not in metrics


def test_live_comparison_reads_each_sides_probabilities() -> None:
    def proba(p: float) -> dict[str, float]:
        return {"0": 1 - p, "1": p}

    actual = np.asarray([1, 1, 0, 0], dtype=object)
    champion_scores, shadow_scores = [0.9, 0.6, 0.6, 0.2], [0.4, 0.3, 0.7, 0.8]
    pairs = LivePairs(
        ids=np.asarray(["a", "b", "c", "d"], dtype=object),
        actual=actual,
        predicted=np.asarray([1, 1, 1, 0], dtype=object),
        versions=np.asarray(["1"] * 4, dtype=object),
        shadows=np.asarray(
            [
                {"model_version": "2", "prediction": int(p >= 0.5), "probabilities": proba(p)}
                for p in shadow_scores
            ],
            dtype=object,
        ),
        sampled=False,
        probabilities=np.asarray([proba(p) for p in champion_scores], dtype=object),
    )
    found = compare_pairs(pairs, "1", "binary", "roc_auc", (0, 1))
    assert found["live_versions"]["1"]["value"] == 0.875
    assert found["live_versions"]["2"]["value"] == 0.0  # the shadow ranks every pair backwards
    paired = found["paired"]
    assert (paired["champion_metric"], paired["challenger_metric"]) == (0.875, 0.0)
    # The sequential test counts right answers: the champion alone is right on a, b and d.
    assert (paired["champion_wins"], paired["challenger_wins"]) == (3, 0)
    rows = experiment.live_metric("1", "binary", "roc_auc", actual, actual)  # no scores
    assert rows.value is None and rows.rows == 4


def test_live_degenerate_check_reads_the_challengers_probabilities() -> None:
    # The gate's hand case on a window's 40 labelled pairs: the challenger ranks every churner
    # above every other customer, and its answers' kappa is 0.1 (one-sided p = 0.26).
    y = np.r_[np.ones(20, int), np.zeros(20, int)]
    answers = np.r_[np.ones(11, int), np.zeros(9, int), np.ones(9, int), np.zeros(11, int)]
    scores = np.r_[np.linspace(0.6, 0.99, 20), np.linspace(0.01, 0.4, 20)]
    champion = 1 - y  # always wrong: every pair the challenger gets right is a win
    without = experiment.paired_test("1", "2", "binary", "accuracy", y, champion, answers)
    assert without.challenger_degenerate == [
        "no skill: Cohen's kappa 0.10 is not above 0 (one-sided p = 0.26 >= 0.01)"
    ]
    pair = (np.full(40, 0.5), scores)
    found = experiment.paired_test(
        "1", "2", "binary", "accuracy", y, champion, answers, pair, y == 1
    )
    assert found.challenger_degenerate == []  # ROC AUC 1 shows the skill, kappa is above 0
    # A positive mask that disagrees with the labels' own order: the scores are not used.
    flipped = experiment.paired_test(
        "1", "2", "binary", "accuracy", y, champion, answers, pair, y == 0
    )
    assert flipped.challenger_degenerate == without.challenger_degenerate
