"""The quality gate's decision, for higher- and lower-is-better metrics."""

from __future__ import annotations

import pytest

from lifecycle.core.settings import Settings
from lifecycle.decisions.gate import decide
from lifecycle.stores.registry import CHALLENGER, CHAMPION


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(MLOPS_HOME=str(tmp_path))


def test_decide_first_model_is_promoted_when_it_meets_the_minimum(settings: Settings) -> None:
    decision = decide("accuracy", "binary", 0.82, None, settings)
    assert decision.promoted and decision.alias == CHAMPION
    assert "no champion yet" in decision.reason


def test_decide_first_model_below_minimum_is_challenger(settings: Settings) -> None:
    decision = decide("accuracy", "binary", 0.55, None, settings)
    assert not decision.promoted and decision.alias == CHALLENGER
    assert "below the minimum 0.7000" in decision.reason


@pytest.mark.parametrize(
    ("candidate", "champion", "promoted"),
    [(0.90, 0.90, True), (0.895, 0.90, True), (0.885, 0.90, False), (0.95, 0.90, True)],
)
def test_decide_compares_with_champion_within_tolerance(
    settings: Settings, candidate: float, champion: float, promoted: bool
) -> None:
    decision = decide("accuracy", "binary", candidate, champion, settings, "3")
    assert decision.promoted is promoted
    assert decision.champion_version == "3"


def test_decide_lower_is_better_metric(settings: Settings) -> None:
    # rmse: 2 % relative tolerance by default
    assert decide("rmse", "regression", 50.5, 50.0, settings, "1").promoted
    assert not decide("rmse", "regression", 52.0, 50.0, settings, "1").promoted


def test_decide_lower_is_better_gates_on_the_maximum(tmp_path) -> None:
    settings = Settings(MLOPS_HOME=str(tmp_path), MLOPS_MAX_METRIC=40.0)
    decision = decide("rmse", "regression", 45.0, None, settings)
    assert not decision.promoted and "above the maximum" in decision.reason


def test_decide_explicit_tolerance(tmp_path) -> None:
    settings = Settings(MLOPS_HOME=str(tmp_path), MLOPS_PROMOTION_TOLERANCE=0.0)
    assert not decide("accuracy", "binary", 0.899, 0.90, settings, "1").promoted


# -- the evidence beyond the point estimates (lifecycle.decisions.gate_evidence) ----------------
def _scored(y, labels, p1=None):
    import numpy as np

    from lifecycle.decisions.gate_evidence import Scored
    from lifecycle.model.evaluation import compute_metrics

    proba = None if p1 is None else np.column_stack([1 - np.asarray(p1), np.asarray(p1)])
    labels = np.asarray(labels)
    return Scored(labels, proba, compute_metrics("binary", y, labels, proba, (0, 1)))


def _rows(n: int, accuracy: float, seed: int):
    """Labels with 14 % positives (the demo's churn rate under drift) and a model that is right
    on each row with probability `accuracy`, its probabilities leaning the same way."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.14).astype(int)
    right = rng.random(n) < accuracy
    labels = np.where(right, y, 1 - y)
    p1 = np.clip(np.where(labels == 1, 0.7, 0.3) + rng.normal(0, 0.1, n), 0.01, 0.99)
    return y, labels, p1


def test_gate_refuses_a_majority_class_predictor_that_wins_on_accuracy() -> None:
    import numpy as np

    from lifecycle.decisions.gate_evidence import degenerate

    y, labels, p1 = _rows(600, 0.80, seed=1)
    majority = _scored(y, np.zeros_like(y), np.full(len(y), 0.14))
    skilled = _scored(y, labels, p1)
    assert majority.metrics["accuracy"] > skilled.metrics["accuracy"]  # 0.86 against ~0.80
    reasons = degenerate("binary", y, majority, (0, 1))
    assert any(r.startswith("single-class predictions") for r in reasons), reasons
    assert degenerate("binary", y, skilled, (0, 1)) == []


def test_gate_guardrails_name_each_metric_worse_than_the_champions() -> None:
    import numpy as np

    from lifecycle.decisions.gate_evidence import guardrails

    y, labels, p1 = _rows(600, 0.85, seed=2)
    champion = _scored(y, labels, p1)
    flat = _scored(y, np.zeros_like(y), np.full(len(y), 0.5))  # F1 0, ROC AUC 0.5
    failures = guardrails("binary", flat, champion)
    assert [f.split()[0] for f in failures] == ["f1", "roc_auc", "log_loss"]
    assert guardrails("binary", champion, champion) == []


def test_gate_paired_interval_is_inconclusive_on_few_rows_and_conclusive_on_many() -> None:
    import numpy as np

    from lifecycle.decisions.gate_evidence import paired_primary

    # The candidate is truly as good as the champion: each is right on 85 % of the rows,
    # independently. On 60 rows the interval spans -0.01; on 20,000 it lies above it.
    for n, verdict in ((60, "inconclusive"), (20_000, "non-inferior")):
        y, champion_labels, _ = _rows(n, 0.85, seed=3)
        right = np.random.default_rng(4).random(n) < 0.85
        candidate_labels = np.where(right, y, 1 - y)
        paired = paired_primary(
            "accuracy",
            "binary",
            y,
            _scored(y, candidate_labels),
            _scored(y, champion_labels),
            (0, 1),
            tolerance=0.01,
        )
        assert paired.verdict == verdict, paired
        assert paired.low <= paired.diff <= paired.high and paired.rows == n
