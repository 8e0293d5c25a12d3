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
