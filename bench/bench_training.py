"""Training benchmark: our search overhead against the bare XGBoost fits it wraps.

Search on the synthetic churn source at 100,000 rows, 50 trials (hyperopt TPE, each trial a
nested MLflow run in a sqlite store). The peer is XGBoost itself: the sum of the trials'
`xgb.train` times. The ratio wall / fit is what orchestration + tracking cost on top.
Target: ratio <= 1.25.
Run: .venv/bin/python bench/bench_training.py [--rows N --trials N --repeats N]
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import typer

from flows.train import run_train_flow
from lifecycle.settings import Settings


def run_once(rows: int, trials: int, seed: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(MLOPS_HOME=str(Path(tmp) / "mlops"))
        t0 = time.perf_counter()
        # Through the train-model flow, as `mlops train` and the deployment run it (Prefect
        # starts a temporary server the first time; the search figures are inside the flow).
        result = run_train_flow(
            settings,
            trials=trials,
            data_source=f"synthetic:churn?rows={rows}&seed={seed}",
            seed=seed,
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


def main(
    rows: int = typer.Option(100_000, "--rows", help="rows of synthetic churn."),
    trials: int = typer.Option(50, "--trials", help="hyperopt trials per search."),
    repeats: int = typer.Option(3, "--repeats", help="searches; the median is reported."),
) -> None:
    """Search overhead (wall / XGBoost fit time) of the train-model flow."""
    runs = []
    for i in range(repeats):
        run = run_once(rows, trials, seed=i)
        runs.append(run)
        print(
            f"  run {i + 1}: search {run['search_wall']:.1f} s wall, {run['fit_sum']:.1f} s in "
            f"XGBoost fit, ratio {run['ratio']:.3f}, log+register {run['register']:.1f} s, "
            f"test accuracy {run['accuracy']:.4f}",
            flush=True,
        )
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"training ({rows:,} rows, {trials} trials, median of {len(runs)} runs):")
    print(f"  search wall time      {med['search_wall']:8.1f} s")
    print(f"  sum of XGBoost fits   {med['fit_sum']:8.1f} s   (peer: bare xgboost.train)")
    print(f"  overhead ratio        {med['ratio']:8.3f}     (target <= 1.25)")
    print(f"  log + register        {med['register']:8.1f} s")
    print(
        f"RESULT training overhead_ratio={med['ratio']:.3f} target<=1.25 "
        f"{'PASS' if med['ratio'] <= 1.25 else 'FAIL'}"
    )


if __name__ == "__main__":
    typer.run(main)
