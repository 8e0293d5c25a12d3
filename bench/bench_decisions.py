"""Live-test benchmark: how often each promotion rule promotes a shadow challenger, on simulated
paired outcomes where the truth is known.

Each run is one experiment of --windows report windows with --pairs labelled rows scored by both
models. Per window, the discordant rows ~ Binomial(pairs, discordance) and the challenger's wins
among them ~ Binomial(discordant, share); share 0.5 is an equally good challenger, so every
promotion there is a false one. The same runs go through:

* per-window: today's rule, a fresh exact McNemar test on each window alone, promoting at the
  first window where it fires (`per_window_mcnemar`, MLOPS_LIVE_MIN_PAIRED=--min-paired);
* sequential: the always-valid test (`update`, the function the report flow calls), which
  promotes, stops for harm, or continues after each window.

Printed per rule: the promotion rate with its 95 % Wilson interval, the rate of harm stops, and
the median labelled pairs (ties included) and windows to a decision among the runs that decided.
Peer: alpha, the false promotion rate a rule promises at share 0.5.
Run: .venv/bin/python bench/bench_decisions.py [--share 0.5 --pairs 300 ... --json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.stats import binomtest

from lifecycle.decisions.sequential import (
    CONTINUE,
    DEFAULT_PRIOR,
    LIVE_MIN_PAIRED,
    PROMOTE,
    STOP_HARM,
    SequentialState,
    per_window_mcnemar,
    update,
)

NO_DECISION = "none"
Outcome = tuple[str, int]  # (decision, 1-based window of the decision; 0 when none)


def simulate(
    runs: int, windows: int, pairs: int, discordance: float, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(discordant rows, challenger wins), each runs x windows, drawn in two numpy calls."""
    rng = np.random.default_rng(seed)
    discordant = rng.binomial(pairs, discordance, size=(runs, windows))
    wins = rng.binomial(discordant, share)
    return discordant, wins


def per_window_rule(alpha: float, min_paired: int, pairs: int) -> Callable[..., Outcome]:
    """Today's rule over one run: the first window whose own McNemar test fires promotes."""

    def decide(discordant: list[int], wins: list[int]) -> Outcome:
        for window, (d, w) in enumerate(zip(discordant, wins, strict=True), start=1):
            if per_window_mcnemar(w, d - w, alpha, pairs=pairs, min_paired=min_paired):
                return PROMOTE, window
        return NO_DECISION, 0

    return decide


def sequential_rule(
    alpha: float, harm_alpha: float | None, prior: float, pairs: int
) -> Callable[..., Outcome]:
    """The sequential test over one run: `update` once per window until it decides."""

    def decide(discordant: list[int], wins: list[int]) -> Outcome:
        state = SequentialState()
        for d, w in zip(discordant, wins, strict=True):
            state = update(state, w, d - w, pairs - d, alpha, harm_alpha=harm_alpha, prior=prior)
            if state.decision != CONTINUE:
                return state.decision, state.windows
        return NO_DECISION, 0

    return decide


def summarise(rule: str, outcomes: list[Outcome], pairs: int, seconds: float) -> dict[str, Any]:
    """Promotion rate (95 % Wilson interval), harm-stop rate, medians to a decision."""
    runs = len(outcomes)
    promoted = sum(decision == PROMOTE for decision, _ in outcomes)
    harmed = sum(decision == STOP_HARM for decision, _ in outcomes)
    interval = binomtest(promoted, runs).proportion_ci(0.95, method="wilson")
    decided = [window for decision, window in outcomes if decision != NO_DECISION]
    median_windows = float(np.median(decided)) if decided else None
    return {
        "rule": rule,
        "runs": runs,
        "promotion_rate": promoted / runs,
        "low": float(interval.low),
        "high": float(interval.high),
        "harm_rate": harmed / runs if rule == "sequential" else None,
        "median_pairs": median_windows * pairs if median_windows is not None else None,
        "median_windows": median_windows,
        "seconds": round(seconds, 2),
    }


def run_rules(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Both rules on the same simulated runs."""
    discordant, wins = simulate(
        args.runs, args.windows, args.pairs, args.discordance, args.share, args.seed
    )
    rules = {
        "per-window": per_window_rule(args.alpha, args.min_paired, args.pairs),
        "sequential": sequential_rule(args.alpha, args.harm_alpha, args.prior, args.pairs),
    }
    rows_d, rows_w = discordant.tolist(), wins.tolist()
    results = []
    for name, decide in rules.items():
        start = time.perf_counter()
        outcomes = [decide(d, w) for d, w in zip(rows_d, rows_w, strict=True)]
        results.append(summarise(name, outcomes, args.pairs, time.perf_counter() - start))
    return results


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    """One line per rule, under a line that says what was simulated."""
    print(
        f"{args.runs} runs x {args.windows} windows x {args.pairs} pairs, discordance "
        f"{args.discordance}, share {args.share}, alpha {args.alpha}, seed {args.seed}"
    )
    print(
        f"{'rule':<11} {'promoted':>8} {'95% interval':>17} {'harm':>7} "
        f"{'med. pairs':>10} {'med. windows':>12} {'seconds':>7}"
    )
    for r in results:
        interval = f"[{r['low']:.4f}, {r['high']:.4f}]"
        print(
            f"{r['rule']:<11} {r['promotion_rate']:>8.4f} {interval:>17} "
            f"{_fmt(r['harm_rate']):>7} {_fmt(r['median_pairs'], 0):>10} "
            f"{_fmt(r['median_windows'], 1):>12} {r['seconds']:>7.2f}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--runs", type=int, default=2000, help="simulated experiments")
    add("--windows", type=int, default=240, help="report windows per experiment")
    add("--pairs", type=int, default=300, help="labelled rows scored by both models per window")
    add("--discordance", type=float, default=0.2, help="share of pairs where the models disagree")
    add("--share", type=float, default=0.5, help="challenger's share of the discordant pairs")
    add("--seed", type=int, default=0, help="numpy default_rng seed")
    add("--alpha", type=float, default=0.05, help="promotion level (MLOPS_LIVE_ALPHA)")
    add("--harm-alpha", type=float, default=None, help="harm-stop level (default: --alpha)")
    add("--prior", type=float, default=DEFAULT_PRIOR, help="Beta(a, a) mixing concentration a")
    add("--min-paired", type=int, default=LIVE_MIN_PAIRED, help="per-window MLOPS_LIVE_MIN_PAIRED")
    add("--json", action="store_true", help="one JSON object per rule and line")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = run_rules(args)
    if args.json:
        for result in results:
            print(json.dumps(result))
    else:
        print_table(args, results)


if __name__ == "__main__":
    main()
