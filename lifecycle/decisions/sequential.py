"""An always-valid sequential test of a shadow challenger against the champion on paired labels.

**Why.** Today's live test runs a fresh exact McNemar test on each report window and promotes at
the first window with p < MLOPS_LIVE_ALPHA. Each look spends its own alpha, so looking every
window for weeks promotes an equally good challenger almost surely (`bench/bench_decisions.py`
measures it). The test here may be checked after every window, forever, and still keeps the
false promotion rate at or below alpha.

**Data.** Each labelled row scored by both models is a pair of outcomes. Only discordant pairs
carry information: `wins` (b) are rows the challenger got right and the champion wrong,
`losses` (c) the reverse; `ties` are concordant rows. (lifecycle.decisions.experiment names
them the other way round: its b is the champion's.) Under H0, "the challenger is not better",
each discordant pair is a challenger win with probability p <= 1/2.

**Statistic.** A mixture of likelihood ratios (Robbins 1970; the mSPRT of Johari et al. 2022)
with a Beta(a, a) prior on p. After b wins out of n = b + c discordant pairs,

    Λ_n = ∫ (2p)^b (2(1 - p))^c Beta(p; a, a) dp = 2^n B(a + b, a + c) / B(a, a).

Promotion uses the one-sided mixture Λ⁺, the same prior restricted to p >= 1/2 and normalised
(density 2 Beta(p; a, a) there, since the prior is symmetric):

    Λ⁺_n = 2 Λ_n P(P > 1/2),  P ~ Beta(a + b, a + c),  i.e.  2 Λ_n I_{1/2}(a + c, a + b),

and harm uses its mirror Λ⁻_n = 2 Λ_n I_{1/2}(a + b, a + c) (prior on p <= 1/2).

**Validity.** For one q, the ratio L_q = (2q)^b (2(1 - q))^c grows by 2q on a win and 2(1 - q)
on a loss; when the win probability is p, its expected factor per discordant pair is
2[pq + (1 - p)(1 - q)] = 2(1 - q) + 2p(2q - 1). For q >= 1/2 that is 1 at p = 1/2 and at most 1
for every p <= 1/2. A mixture of such ratios over q >= 1/2 is therefore a nonnegative martingale
under p = 1/2 and a supermartingale under any p < 1/2, with Λ⁺_0 = 1. Ville's inequality gives
P(sup_n Λ⁺_n >= 1/alpha) <= alpha: promoting at the first window where Λ⁺ >= 1/alpha, whenever
one looks, keeps the false promotion rate <= alpha. The same argument with q <= 1/2 bounds the
harm stop, Λ⁻ >= 1/harm_alpha, by harm_alpha when the challenger is not worse. A concordant row
multiplies the ratio by 1 and the null only restricts each discordant pair's win probability
given the past, so windows of any size, a discordance rate that drifts, and a p that changes
over time (as long as it stays <= 1/2) all keep the guarantee. Stopping for harm only removes
chances to promote. The guarantee does require that `prior` and `alpha` stay fixed for the life
of one experiment: a new challenger starts a new state.

**The prior concentration a.** Beta(a, a) has standard deviation 1 / (2 sqrt(2a + 1)) around
1/2; the one-sided half puts its mass on excess shares p - 1/2 of a few hundredths to about 0.2.
The default a = 10 (sd 0.109, mean excess 0.088) aims at challengers that win 55-65 % of the
discordant pairs. Median discordant pairs to promotion at alpha = 0.05 (1,000 simulated runs,
one pair at a time):

    share of wins   a=1   a=3   a=5   a=10   a=20   a=50
    0.55            781   682   637    582    552    561
    0.60            168   145   137    139    151    184
    0.65             66    62    64     67     81    103
    0.70             35    34    37     43     53     72

a = 10 is within 6 % of the best choice at 0.55 and 0.60 and pays 10-25 % at large effects,
which are found within a window or two anyway. The statistic is computed in log space (betaln,
and a tail series where betainc underflows), so it stays finite at n in the hundreds of
thousands.

References: H. Robbins, "Statistical methods related to the law of the iterated logarithm",
Annals of Mathematical Statistics 41 (1970); R. Johari, P. Koomen, L. Pekelis, D. Walsh, "Always
Valid Inference: Continuous Monitoring of A/B Tests", Operations Research 70 (2022);
S. R. Howard, A. Ramdas, J. McAuliffe, J. Sekhon, "Time-uniform, nonparametric, nonasymptotic
confidence sequences", Annals of Statistics 49 (2021).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np
from scipy.special import bdtr, betainc, betaln, logsumexp

DEFAULT_PRIOR = 10.0  # Beta(a, a) concentration: see "The prior concentration a" above
LIVE_MIN_PAIRED = 200  # MLOPS_LIVE_MIN_PAIRED's default: today's rule skips smaller windows

CONTINUE, PROMOTE, STOP_HARM = "continue", "promote", "stop-harm"
DECISIONS = (CONTINUE, PROMOTE, STOP_HARM)
Decision = Literal["continue", "promote", "stop-harm"]
Side = Literal["better", "worse", "two-sided"]

_LOG2 = math.log(2.0)
_UNDERFLOW = 1e-280  # below this, betainc's value is replaced by the tail series


@dataclass(frozen=True)
class SequentialState:
    """The running test of one challenger: cumulative paired counts, the two log mixture
    ratios (promotion and harm) and the decision, which never changes once taken."""

    wins: int = 0  # discordant pairs the challenger got right and the champion wrong (b)
    losses: int = 0  # discordant pairs the champion got right and the challenger wrong (c)
    ties: int = 0  # concordant pairs (both right or both wrong): no evidence either way
    windows: int = 0  # updates so far
    log_lr_better: float = 0.0  # log Λ⁺: evidence that the challenger is better
    log_lr_worse: float = 0.0  # log Λ⁻: evidence that it is worse
    decision: Decision = CONTINUE

    @property
    def pairs(self) -> int:
        """Labelled rows scored by both models, ties included."""
        return self.wins + self.losses + self.ties


def log_mixture_ratio(wins: int, losses: int, prior: float, side: Side) -> float:
    """log Λ after `wins` (b) and `losses` (c) discordant pairs with a Beta(prior, prior) mixing
    prior: "two-sided" log[2^n B(a+b, a+c) / B(a, a)], "better" the prior on p >= 1/2 (Λ⁺),
    "worse" the prior on p <= 1/2 (Λ⁻)."""
    if side not in ("better", "worse", "two-sided"):
        raise ValueError(f"side must be 'better', 'worse' or 'two-sided', got {side!r}")
    if side == "two-sided":
        _check_counts(wins, losses, prior)
        return _log_two_sided(wins, losses, float(prior))
    better, worse = _log_one_sided(wins, losses, prior)
    return better if side == "better" else worse


def update(
    state: SequentialState,
    wins: int,
    losses: int,
    ties: int,
    alpha: float,
    *,
    harm_alpha: float | None = None,
    prior: float = DEFAULT_PRIOR,
) -> SequentialState:
    """The state after one more report window with these new paired counts: "promote" when
    Λ⁺ >= 1/alpha, "stop-harm" when Λ⁻ >= 1/harm_alpha (harm_alpha defaults to alpha), else
    "continue" (harm wins should both cross). A state that has decided is returned unchanged:
    the experiment is over."""
    harm = alpha if harm_alpha is None else harm_alpha
    for name, level in (("alpha", alpha), ("harm_alpha", harm)):
        if not 0 < level < 1:
            raise ValueError(f"{name} must be in (0, 1), got {level}")
    if min(wins, losses, ties) < 0:
        raise ValueError(f"counts must be nonnegative, got {wins}, {losses}, {ties}")
    if state.decision != CONTINUE:
        return state
    total_wins, total_losses = state.wins + wins, state.losses + losses
    better, worse = _log_one_sided(total_wins, total_losses, prior)
    decision = CONTINUE
    if worse >= -math.log(harm):
        decision = STOP_HARM
    elif better >= -math.log(alpha):
        decision = PROMOTE
    return SequentialState(
        total_wins, total_losses, state.ties + ties, state.windows + 1, better, worse, decision
    )


def to_document(state: SequentialState) -> dict[str, Any]:
    """The state as a MongoDB document (plain ints, floats and a string)."""
    return asdict(state)


def from_document(document: Mapping[str, Any]) -> SequentialState:
    """The state stored by `to_document`; other keys (Mongo's `_id`, the experiment's names)
    are ignored, a missing field or an unknown decision raises ValueError."""
    names = [field.name for field in fields(SequentialState)]
    missing = [name for name in names if name not in document]
    if missing:
        raise ValueError(f"not a sequential test state: missing {', '.join(missing)}")
    if document["decision"] not in DECISIONS:
        raise ValueError(f"unknown decision {document['decision']!r}")
    counts = {name: int(document[name]) for name in ("wins", "losses", "ties", "windows")}
    return SequentialState(
        **counts,
        log_lr_better=float(document["log_lr_better"]),
        log_lr_worse=float(document["log_lr_worse"]),
        decision=document["decision"],
    )


def mcnemar_p_value(wins: int, losses: int) -> float:
    """The exact two-sided McNemar p-value of one window: min(1, 2 P(X <= min(b, c))) for
    X ~ Binomial(b + c, 1/2), which is scipy.stats.binomtest(c, b + c, 0.5).pvalue (the
    distribution is symmetric) at a fraction of its cost."""
    n = wins + losses
    if n == 0:
        return 1.0
    return min(1.0, 2.0 * float(bdtr(min(wins, losses), n, 0.5)))


def per_window_mcnemar(
    wins: int,
    losses: int,
    alpha: float,
    *,
    pairs: int | None = None,
    min_paired: int = LIVE_MIN_PAIRED,
) -> bool:
    """Today's promotion rule (lifecycle.experiment.promotion) on one window alone: at least
    `min_paired` labelled pairs (`pairs`, ties included; b + c when not given), the exact
    two-sided McNemar p < alpha, and more discordant pairs won by the challenger. Its other
    condition, "not worse on the primary metric", follows for accuracy from wins > losses."""
    paired = wins + losses if pairs is None else pairs
    if paired < min_paired or wins <= losses:
        return False
    return mcnemar_p_value(wins, losses) < alpha


def _check_counts(wins: int, losses: int, prior: float) -> None:
    if wins < 0 or losses < 0:
        raise ValueError(f"counts must be nonnegative, got wins={wins}, losses={losses}")
    if not prior > 0:
        raise ValueError(f"the prior concentration must be positive, got {prior}")


def _log_two_sided(wins: int, losses: int, a: float) -> float:
    return float(betaln(a + wins, a + losses) - betaln(a, a)) + (wins + losses) * _LOG2


def _log_one_sided(wins: int, losses: int, prior: float) -> tuple[float, float]:
    """(log Λ⁺, log Λ⁻) = log 2Λ + log P(P > 1/2), log 2Λ + log P(P < 1/2) for the posterior
    P ~ Beta(a + b, a + c), whose P(P > 1/2) is I_{1/2}(a + c, a + b)."""
    _check_counts(wins, losses, prior)
    a = float(prior)
    twice = _LOG2 + _log_two_sided(wins, losses, a)  # the half prior's density is 2 Beta(a, a)
    better = twice + _log_half_cdf(a + losses, a + wins)
    worse = twice + _log_half_cdf(a + wins, a + losses)
    return better, worse


def _log_half_cdf(p: float, q: float) -> float:
    """log I_{1/2}(p, q), the Beta(p, q) distribution function at 1/2, finite far into the
    upper tail where betainc underflows to 0."""
    value = float(betainc(p, q, 0.5))
    if value > _UNDERFLOW or p <= q:
        return math.log(value)
    # DLMF 8.17.8: I_x(p, q) = x^p (1 - x)^q / (p B(p, q)) 2F1(p + q, 1; p + 1; x). At x = 1/2
    # the series has positive terms whose ratio (p + q + k) / (2 (p + 1 + k)) never exceeds
    # max((p + q) / (2p + 2), 1/2) < 1 when p > q, so summing them in log space is stable.
    ratio = max((p + q) / (2.0 * (p + 1.0)), 0.5)
    terms = min(int(45.0 / -math.log(ratio)) + 2, 1_000_000)
    k = np.arange(terms - 1, dtype=float)
    steps = np.log((p + q + k) / (2.0 * (p + 1.0 + k)))
    log_series = float(logsumexp(np.concatenate(([0.0], np.cumsum(steps)))))
    return -(p + q) * _LOG2 - math.log(p) - float(betaln(p, q)) + log_series
