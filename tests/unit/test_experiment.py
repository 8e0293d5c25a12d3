"""Live-experiment statistics and decisions (lifecycle.decisions.experiment): the exact McNemar
test, the promotion and rollback rules, and their alias moves (a real sqlite MLflow registry) and
events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import binomtest

from lifecycle.core import events
from lifecycle.core.settings import Settings
from lifecycle.decisions import experiment
from lifecycle.stores import registry


def _pairs(n: int, champion_accuracy: float, challenger_accuracy: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    actual = rng.integers(0, 2, n)
    champion = np.where(rng.uniform(size=n) < champion_accuracy, actual, 1 - actual)
    challenger = np.where(rng.uniform(size=n) < challenger_accuracy, actual, 1 - actual)
    return actual, champion, challenger


def test_mcnemar_p_value_is_binomtest_on_the_discordant_pairs() -> None:
    actual, champion, challenger = _pairs(400, 0.6, 0.75)
    test = experiment.paired_test("1", "2", "binary", "accuracy", actual, champion, challenger)
    right_a, right_s = champion == actual, challenger == actual
    b, c = int(np.sum(right_a & ~right_s)), int(np.sum(~right_a & right_s))
    assert (test.champion_wins, test.challenger_wins) == (b, c)
    assert test.p_value == pytest.approx(binomtest(c, b + c, 0.5).pvalue, abs=0, rel=1e-12)
    assert test.test == "mcnemar-exact" and test.pairs == 400
    assert test.challenger_metric == pytest.approx(right_s.mean())


def test_regression_pairs_use_wilcoxon_on_absolute_errors() -> None:
    from scipy.stats import wilcoxon

    rng = np.random.default_rng(1)
    y = rng.normal(size=300)
    a, s = y + rng.normal(0, 1.0, 300), y + rng.normal(0, 0.5, 300)
    test = experiment.paired_test("1", "2", "regression", "rmse", y, a, s)
    assert test.test == "wilcoxon"
    assert test.p_value == pytest.approx(wilcoxon(np.abs(a - y), np.abs(s - y)).pvalue)


def test_live_metric_has_a_wilson_interval_around_accuracy() -> None:
    actual, champion, _ = _pairs(500, 0.7, 0.7)
    metric = experiment.live_metric("1", "binary", "accuracy", actual, champion)
    assert metric.rows == 500 and metric.low < metric.value < metric.high
    assert metric.high - metric.low < 0.09


@pytest.fixture
def two_versions(mlops_home: Path) -> Settings:
    """A sqlite registry with versions 1 (champion) and 2 (challenger) of a stub model: moving
    aliases needs registered versions, not trained ones."""
    settings = Settings(MLOPS_AUTO_PROMOTE=True)
    registry.configure(settings)
    client = registry.client(settings)
    client.create_registered_model(settings.model_name)
    for _ in range(2):
        client.create_model_version(settings.model_name, source=str(mlops_home / "stub"))
    client.set_registered_model_alias(settings.model_name, registry.CHAMPION, "1")
    client.set_registered_model_alias(settings.model_name, registry.CHALLENGER, "2")
    return settings


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The events lifecycle.core.events.emit hands to Prefect (its transport is Prefect's)."""
    import prefect.events

    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(prefect.events, "emit_event", lambda **kw: seen.append(kw))
    return seen


def _experiment(settings: Settings, windows: list[tuple[int, int, int]]):
    """The challenger's experiment (v1 champion, v2 challenger) after these windows of
    (wins, losses, ties), one hour apart, as the report flow advances it."""
    from datetime import UTC, datetime, timedelta

    from lifecycle.decisions.live_test import PairedCounts, advance

    running, start = None, datetime(2026, 12, 1, tzinfo=UTC)
    for i, (wins, losses, ties) in enumerate(windows):
        end = start + timedelta(hours=i + 1)
        running = advance(running, PairedCounts("1", "2", wins, losses, ties), end, end, settings)
    return running


def test_shadow_better_by_the_sequential_test_is_promoted_and_emits_its_event(
    two_versions: Settings, emitted: list
) -> None:
    running = _experiment(two_versions, [(30, 12, 258), (28, 10, 262)])  # 58 wins, 22 losses
    assert running.state.decision == "promote" and running.state.windows == 2
    decision = experiment.act(experiment.live_decision(running, two_versions), "1", two_versions)
    assert decision.action == "promote" and decision.acted and decision.version == "2"
    assert "600 pairs over 2 windows" in decision.reason and "decides at 20" in decision.reason
    aliases = registry.aliases(two_versions)
    assert aliases[registry.CHAMPION] == "2" and aliases[registry.PREVIOUS] == "1"
    assert [e["event"] for e in emitted] == [events.CHALLENGER_PROMOTED]
    assert emitted[0]["resource"][events.MODEL_VERSION_LABEL] == "2"
    assert emitted[0]["payload"]["from_version"] == "1"


def test_a_window_counted_once_leaves_the_experiment_as_it_was() -> None:
    from lifecycle.decisions.live_test import PairedCounts, advance

    settings = Settings()
    running = _experiment(settings, [(5, 3, 100)])
    again = advance(
        running,
        PairedCounts("1", "2", 5, 3, 100),
        running.counted_until,
        running.updated_at,
        settings,
    )
    assert again is running  # a report run again over the same hours counts nothing twice


def test_shadow_worse_by_the_sequential_test_is_stopped_and_its_alias_dropped(
    two_versions: Settings, emitted: list
) -> None:
    running = _experiment(two_versions, [(10, 32, 258), (12, 30, 258)])
    assert running.state.decision == "stop-harm"
    decision = experiment.act(experiment.live_decision(running, two_versions), "1", two_versions)
    assert decision.action == "stop" and decision.acted and decision.version == "2"
    assert registry.CHALLENGER not in registry.aliases(two_versions)  # canary traffic stops
    assert registry.aliases(two_versions)[registry.CHAMPION] == "1"
    assert [e["event"] for e in emitted] == [events.CHALLENGER_STOPPED]
    assert emitted[0]["payload"]["challenger"] == "2"


@pytest.mark.parametrize(
    ("windows", "auto", "why"),
    [
        ([(12, 8, 280)], True, "no decision yet"),  # evidence too thin to decide
        ([(30, 12, 258), (28, 10, 262)], False, "would promote (MLOPS_AUTO_PROMOTE=false)"),
    ],
)
def test_shadow_is_not_promoted_without_enough_evidence_or_permission(
    emitted: list, windows: list, auto: bool, why: str
) -> None:
    # No registry: a decision not acted on never reaches it (nor Prefect).
    settings = Settings(MLOPS_AUTO_PROMOTE=auto)
    running = _experiment(settings, windows)
    decision = experiment.act(experiment.live_decision(running, settings), "1", settings)
    assert why in decision.reason and not decision.acted and emitted == []


def _live(value: float, rows: int, version: str = "2") -> tuple[str, experiment.LiveMetric]:
    """A version's live accuracy on `rows` labels, with its Wilson interval."""
    hits = round(value * rows)
    actual = np.ones(rows, int)
    predicted = np.r_[np.ones(hits, int), np.zeros(rows - hits, int)]
    return version, experiment.live_metric(version, "binary", "accuracy", actual, predicted)


def test_champion_wholly_outside_its_bounds_for_two_windows_is_rolled_back(
    two_versions: Settings, emitted: list
) -> None:
    registry.promote("2", two_versions)  # champion v2, previous v1
    one_bad = [_live(0.55, 400), _live(0.81, 400)]
    assert experiment.rollback("2", one_bad, "binary", two_versions).action == "none"
    two_bad = [_live(0.55, 400), _live(0.6, 400), _live(0.8, 400)]
    decision = experiment.act(
        experiment.rollback("2", two_bad, "binary", two_versions), "2", two_versions
    )
    assert decision.action == "rollback" and decision.acted and decision.version == "1"
    assert "wholly outside [0.7000, 0.9950], 2 reports" in decision.reason
    assert registry.aliases(two_versions)[registry.CHAMPION] == "1"
    assert [e["event"] for e in emitted] == [events.CHAMPION_ROLLED_BACK]
    # Reports of another version do not count toward the champion's windows.
    mixed = [_live(0.5, 400, "1"), _live(0.5, 400, "2")]
    assert experiment.rollback("1", mixed, "binary", two_versions).action == "none"


def test_noise_on_few_labels_does_not_roll_a_good_champion_back() -> None:
    # A champion whose true accuracy is 0.75 (bound 0.70), on 20 labels a window: point
    # estimates below the bound are common, an interval wholly below it is not.
    settings = Settings()
    rng = np.random.default_rng(7)
    rolled_on_points = rolled = 0
    for _ in range(500):
        history = [_live(rng.binomial(20, 0.75) / 20, 20) for _ in range(2)]
        rolled_on_points += all(m.value < 0.70 for _, m in history)
        rolled += experiment.rollback("2", history, "binary", settings).action == "rollback"
    assert rolled_on_points > 20  # the old point-estimate rule: ~10 % of these champions
    assert rolled == 0


def test_gate_sends_a_winner_to_the_shadow_first_when_live_promotion_is_on() -> None:
    from lifecycle.decisions.gate import GateDecision, shadow_first

    won = GateDecision(True, registry.CHAMPION, "accuracy 0.8 vs champion v1 0.7", 0.8, "1", 0.7)
    live = Settings(MLOPS_SHADOW_ALIAS="challenger", MLOPS_AUTO_PROMOTE=True)
    decision = shadow_first(won, live)
    assert (decision.promoted, decision.alias) == (False, "challenger")
    assert decision.reason.endswith("to shadow `challenger` first: live evidence promotes it")
    assert shadow_first(won, Settings(MLOPS_SHADOW_ALIAS="challenger")) == won  # no auto
    first = GateDecision(True, registry.CHAMPION, "no champion yet", 0.8)
    assert shadow_first(first, live) == first  # nothing to shadow: the first model serves


def test_a_majority_class_shadow_is_never_promoted_however_accurate(emitted: list) -> None:
    # Live labels with 14 % churn: a shadow that always says "no churn" is right 86 % of the
    # time, far more than a champion gone wrong, and the sequential test says "better".
    rng = np.random.default_rng(5)
    actual = (rng.random(400) < 0.14).astype(int)
    champion = np.where(rng.random(400) < 0.45, actual, 1 - actual)
    majority = np.zeros(400, int)
    test = experiment.paired_test("1", "2", "binary", "accuracy", actual, champion, majority)
    assert test.challenger_degenerate[0].startswith("single-class predictions")
    settings = Settings(MLOPS_AUTO_PROMOTE=True)
    running = _experiment(settings, [(test.challenger_wins, test.champion_wins, 0)])
    assert running.state.decision == "promote"
    decision = experiment.live_decision(running, settings, test.challenger_degenerate)
    assert decision.action == "none" and "degenerate on the live rows" in decision.reason
    assert experiment.act(decision, "1", settings) == decision and emitted == []
