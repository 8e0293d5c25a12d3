"""Training benchmark: our search overhead against the bare XGBoost fits it wraps.

Search on the synthetic churn source at 100,000 rows, 50 trials (hyperopt TPE, each trial a
nested MLflow run in a sqlite store). The peer is XGBoost itself: the sum of the trials'
`xgb.train` times. The ratio wall / fit is what orchestration + tracking cost on top.
Target: ratio <= 1.25.
Run: .venv/bin/python bench/bench_training.py [--rows N --trials N --repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from lifecycle.settings import Settings
from lifecycle.training import train


def run_once(rows: int, trials: int, seed: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(MLOPS_HOME=str(Path(tmp) / "mlops"))
        t0 = time.perf_counter()
        result = train(
            settings, trials=trials, source=f"synthetic:churn?rows={rows}&seed={seed}", seed=seed
        )
        total = time.perf_counter() - t0
    return {
        "search_wall": result.search.wall_seconds,
        "fit_sum": result.search.fit_seconds,
        "ratio": result.search.wall_seconds / result.search.fit_seconds,
        "register": result.register_seconds,
        "total": total,
        "accuracy": result.test_metrics["accuracy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for i in range(args.repeats):
        run = run_once(args.rows, args.trials, seed=i)
        runs.append(run)
        print(
            f"  run {i + 1}: search {run['search_wall']:.1f} s wall, {run['fit_sum']:.1f} s in "
            f"XGBoost fit, ratio {run['ratio']:.3f}, log+register {run['register']:.1f} s, "
            f"test accuracy {run['accuracy']:.4f}",
            flush=True,
        )
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"training ({args.rows:,} rows, {args.trials} trials, median of {len(runs)} runs):")
    print(f"  search wall time      {med['search_wall']:8.1f} s")
    print(f"  sum of XGBoost fits   {med['fit_sum']:8.1f} s   (peer: bare xgboost.train)")
    print(f"  overhead ratio        {med['ratio']:8.3f}     (target <= 1.25)")
    print(f"  log + register        {med['register']:8.1f} s")
    print(
        f"RESULT training overhead_ratio={med['ratio']:.3f} target<=1.25 "
        f"{'PASS' if med['ratio'] <= 1.25 else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
