"""The always-valid live test (lifecycle.decisions.sequential): the mixture ratio on hand-computed
cases, the decisions it takes, its stored form, and today's per-window rule it replaces."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import betainc
from scipy.stats import binomtest

from lifecycle.decisions import sequential
from lifecycle.decisions.sequential import (
    PROMOTE,
    STOP_HARM,
    SequentialState,
    from_document,
    log_mixture_ratio,
    per_window_mcnemar,
    to_document,
    update,
)


def test_log_mixture_ratio_by_hand_with_a_uniform_prior() -> None:
    # a = 1 (uniform prior), 3 wins, 0 losses, n = 3:
    # two-sided  Λ  = 2^3 B(4, 1) / B(1, 1) = 8 * (1/4) / 1 = 2
    # better     Λ⁺ = 8 * ∫_{1/2}^1 p^3 * 2 dp = 16 * (1 - 1/16) / 4 = 15/4
    # worse      Λ⁻ = 8 * ∫_0^{1/2} p^3 * 2 dp = 16 * (1/16) / 4 = 1/4
    # (and Λ⁺ + Λ⁻ = 2Λ, since the two halves of the prior average to the whole)
    assert math.exp(log_mixture_ratio(3, 0, 1.0, "two-sided")) == pytest.approx(2.0, rel=1e-12)
    assert math.exp(log_mixture_ratio(3, 0, 1.0, "better")) == pytest.approx(3.75, rel=1e-12)
    assert math.exp(log_mixture_ratio(3, 0, 1.0, "worse")) == pytest.approx(0.25, rel=1e-12)


def test_log_mixture_ratio_by_hand_with_mixed_outcomes() -> None:
    # a = 1, 1 win, 1 loss: Λ = 4 B(2, 2) = 4 * (1/6) = 2/3, and by symmetry Λ⁺ = Λ⁻ = 2/3;
    # a = 2, 2 wins, 0 losses: Λ = 4 B(4, 2) / B(2, 2) = 4 * (1/20) * 6 = 6/5
    assert math.exp(log_mixture_ratio(1, 1, 1.0, "two-sided")) == pytest.approx(2 / 3)
    assert math.exp(log_mixture_ratio(1, 1, 1.0, "better")) == pytest.approx(2 / 3)
    assert math.exp(log_mixture_ratio(2, 0, 2.0, "two-sided")) == pytest.approx(6 / 5)


def test_log_mixture_ratio_is_zero_before_any_discordant_pair() -> None:
    for side in ("better", "worse", "two-sided"):
        assert log_mixture_ratio(0, 0, sequential.DEFAULT_PRIOR, side) == pytest.approx(0.0)


def test_log_mixture_ratio_stays_finite_at_a_hundred_thousand_pairs() -> None:
    better = log_mixture_ratio(60_000, 40_000, sequential.DEFAULT_PRIOR, "better")
    worse = log_mixture_ratio(60_000, 40_000, sequential.DEFAULT_PRIOR, "worse")
    assert 1_900 < better < 2_100  # ~ n KL(0.6 || 0.5) = 100,000 * 0.0201
    assert math.isfinite(worse) and worse < 0
    assert log_mixture_ratio(40_000, 60_000, sequential.DEFAULT_PRIOR, "worse") == better


@pytest.mark.parametrize(("p", "q"), [(700.0, 400.0), (5_000.0, 3_000.0), (30.0, 12.0)])
def test_tail_series_matches_betainc_where_both_are_representable(
    monkeypatch: pytest.MonkeyPatch, p: float, q: float
) -> None:
    monkeypatch.setattr(sequential, "_UNDERFLOW", 1.0)  # every value takes the series
    assert sequential._log_half_cdf(p, q) == pytest.approx(math.log(betainc(p, q, 0.5)), 1e-12)


def test_log_mixture_ratio_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="nonnegative"):
        log_mixture_ratio(-1, 0, 1.0, "better")
    with pytest.raises(ValueError, match="positive"):
        log_mixture_ratio(1, 0, 0.0, "better")
    with pytest.raises(ValueError, match="side"):
        log_mixture_ratio(1, 0, 1.0, "greater")  # type: ignore[arg-type]


def test_update_promotes_a_clearly_better_challenger() -> None:
    state = SequentialState()
    for _ in range(3):
        state = update(state, 30, 10, 160, 0.05)
    assert state.decision == PROMOTE
    assert state.log_lr_better >= math.log(20) > state.log_lr_worse
    assert state.windows <= 3 and state.pairs == 200 * state.windows


def test_update_stops_a_clearly_worse_challenger_for_harm() -> None:
    state = SequentialState()
    for _ in range(3):
        state = update(state, 10, 30, 160, 0.05)
    assert state.decision == STOP_HARM and state.log_lr_worse >= math.log(20)


def test_update_takes_no_decision_on_balanced_data() -> None:
    state = SequentialState()
    for _ in range(50):
        state = update(state, 30, 30, 240, 0.05)
    assert state.decision == "continue"
    assert (state.wins, state.losses, state.ties, state.windows) == (1_500, 1_500, 12_000, 50)
    assert state.log_lr_better == state.log_lr_worse < 0


def test_update_keeps_a_decision_once_taken() -> None:
    promoted = update(SequentialState(), 60, 10, 130, 0.05)
    assert promoted.decision == PROMOTE
    after = update(promoted, 0, 500, 0, 0.05)  # overwhelming evidence the other way
    assert after is promoted


def test_update_harm_alpha_is_its_own_level() -> None:
    state = update(SequentialState(), 15, 45, 0, 0.05)
    assert state.decision == STOP_HARM
    stricter = update(SequentialState(), 15, 45, 0, 0.05, harm_alpha=1e-6)
    assert stricter.decision == "continue"
    with pytest.raises(ValueError, match="harm_alpha"):
        update(SequentialState(), 1, 0, 0, 0.05, harm_alpha=1.0)


def test_update_refuses_negative_counts() -> None:
    with pytest.raises(ValueError, match="nonnegative"):
        update(SequentialState(), 1, -1, 0, 0.05)


def test_sequential_false_promotion_rate_stays_below_alpha() -> None:
    """400 experiments of 100 windows, an equally good challenger: Ville's bound, with room for
    the simulation's own noise (a rate of 0.05 would exceed 0.08 with probability < 0.5 %)."""
    rng = np.random.default_rng(7)
    discordant = rng.binomial(100, 0.3, size=(400, 100))
    wins = rng.binomial(discordant, 0.5)
    promoted = 0
    for d_row, w_row in zip(discordant.tolist(), wins.tolist(), strict=True):
        state = SequentialState()
        for d, w in zip(d_row, w_row, strict=True):
            state = update(state, w, d - w, 100 - d, 0.05)
            if state.decision != "continue":
                break
        promoted += state.decision == PROMOTE
    assert promoted / 400 <= 0.08


def test_state_round_trips_through_its_document() -> None:
    state = update(update(SequentialState(), 12, 7, 81, 0.05), 9, 11, 80, 0.05)
    document = to_document(state)
    assert document["wins"] == 21 and document["decision"] == "continue"
    assert from_document({**document, "_id": "abc", "challenger": "7"}) == state


def test_from_document_refuses_an_incomplete_or_unknown_state() -> None:
    document = to_document(SequentialState())
    with pytest.raises(ValueError, match="missing wins"):
        from_document({k: v for k, v in document.items() if k != "wins"})
    with pytest.raises(ValueError, match="unknown decision"):
        from_document({**document, "decision": "rollback"})


def test_mcnemar_p_value_is_todays_exact_binomial_test() -> None:
    for n in range(0, 31):
        for wins in range(n + 1):
            expected = binomtest(wins, n, 0.5).pvalue if n else 1.0
            assert sequential.mcnemar_p_value(wins, n - wins) == pytest.approx(expected, 1e-10)


def test_per_window_mcnemar_reproduces_todays_rule() -> None:
    # 40 vs 20 discordant pairs: p = 0.0134 (two-sided exact)
    assert per_window_mcnemar(40, 20, 0.05, pairs=300)
    assert not per_window_mcnemar(20, 40, 0.05, pairs=300)  # significant, but for the champion
    assert not per_window_mcnemar(40, 20, 0.01, pairs=300)
    assert not per_window_mcnemar(40, 20, 0.05, pairs=199)  # below MLOPS_LIVE_MIN_PAIRED
    assert per_window_mcnemar(40, 20, 0.05, pairs=60, min_paired=0)
