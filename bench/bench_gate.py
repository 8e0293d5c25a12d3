"""Gate benchmark: how often the quality gate's degenerate battery refuses a binary model, by the
model's true skill and the number of rows the gate decides on.

The battery (`lifecycle.decisions.checks.degenerate_reasons`, the function the gate calls through
`gate_evidence.degenerate`) refuses a model whose skill it cannot tell apart from a blind guess:
with probabilities, ROC AUC must be above 0.5 by the one-sided Mann-Whitney test at level 0.01
and the answers' kappa above 0, so a useless model passes at most once in 100, and a model with
skill passes once the rows are enough to show it. This prints both sides of that trade:

* true ROC AUC 0.5 (a random model): the share that passed, with its 95 % interval (peer: the
  level the battery promises, 0.01);
* AUC above 0.5: the share refused is the price of that promise on few rows (1 - power).

Each run draws `rows` labels with `--positives` positives on average and binormal scores whose
true AUC is the cell's (separation √2 Φ⁻¹(AUC), unit variances); probabilities rise with the
score and cross 0.5 midway between the classes, and answers threshold them at 0.5, as a model
trained with MLOPS_CLASS_WEIGHT=balanced answers. Seeded: the same flags print the same table.
Run: .venv/bin/python bench/bench_gate.py [--runs 1000 --positives 0.15 --json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

import numpy as np
from scipy.stats import binomtest, norm

from lifecycle.decisions.checks import ALPHA, degenerate_reasons

AUCS = (0.5, 0.6, 0.7, 0.8, 0.9)
ROWS = (50, 86, 171, 500, 2000)


def draw(rng: np.random.Generator, rows: int, positives: float, auc: float) -> tuple:
    """(labels, answers, probabilities) of one simulated model on `rows` rows."""
    separation = float(np.sqrt(2) * norm.ppf(auc))
    y = (rng.random(rows) < positives).astype(int)
    score = rng.normal(separation * y, 1.0)
    # A probability that rises with the score and is 0.5 midway between the classes, where the
    # class-balanced posterior is (a random model's is uniform: it answers at random).
    p = norm.cdf(score - separation / 2)
    return y, (p >= 0.5).astype(int), np.column_stack([1 - p, p])


def refusals(runs: int, rows: int, positives: float, auc: float, seed: int) -> dict:
    """The share of `runs` models the battery refused, its 95 % interval, and the commonest
    first reason (its check's name)."""
    rng = np.random.default_rng([seed, rows, int(auc * 1000)])
    refused, reasons = 0, Counter()
    for _ in range(runs):
        y, answers, proba = draw(rng, rows, positives, auc)
        found = degenerate_reasons("binary", y, answers, (0, 1), proba)
        refused += bool(found)
        reasons.update({found[0].split(":")[0]} if found else set())
    interval = binomtest(refused, runs).proportion_ci(0.95, method="wilson")
    return {
        "auc": auc,
        "rows": rows,
        "refused": refused / runs,
        "low": float(interval.low),
        "high": float(interval.high),
        "reason": reasons.most_common(1)[0][0] if reasons else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--positives", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="one JSON object per cell")
    args = parser.parse_args()
    t0 = time.perf_counter()
    cells = [
        refusals(args.runs, rows, args.positives, auc, args.seed) for auc in AUCS for rows in ROWS
    ]
    if args.json:
        for cell in cells:
            print(json.dumps(cell))
        return
    print(
        f"degenerate battery, {args.runs} models per cell, {args.positives:.0%} positives, "
        f"level {ALPHA:g} per test ({time.perf_counter() - t0:.1f} s)"
    )
    print(f"{'true AUC':>8} | " + " | ".join(f"{r:>6} rows" for r in ROWS) + " : share refused")
    for auc in AUCS:
        row = [c for c in cells if c["auc"] == auc]
        print(f"{auc:8.2f} | " + " | ".join(f"{c['refused']:11.3f}" for c in row))
    for c in (c for c in cells if c["auc"] == 0.5):
        print(
            f"peer: a random model on {c['rows']} rows passed {1 - c['refused']:.4f} "
            f"[{1 - c['high']:.4f}, {1 - c['low']:.4f}] of the time (promised: at most {ALPHA:g})"
        )


if __name__ == "__main__":
    main()
