"""Training benchmark: our search overhead against the bare XGBoost fits it wraps.

Search on the synthetic churn source at 100,000 rows, 50 trials (hyperopt TPE, each trial a
nested MLflow run in a sqlite store). The peer is XGBoost itself: the sum of the trials'
`xgb.train` times. The ratio wall / fit is what orchestration + tracking cost on top.
Target: ratio <= 1.25.

Then the same search on a local Dask cluster (`mlops cluster`: 2 worker processes, 1 thread
each, MLOPS_DASK_ADDRESS), on the same machine, both runs reporting to one Prefect server.
Cluster efficiency = sum of trial fit seconds / (search wall x worker slots), target >= 0.85;
the peer is the local search: wall ratio local / cluster.
Run: .venv/bin/python bench/bench_training.py [--rows N --trials N --repeats N --no-cluster]
                                              [--batch N]
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import typer

from flows.train import run_train_flow
from lifecycle.core.settings import Settings


def run_once(rows: int, trials: int, seed: int, **extra: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(MLOPS_HOME=str(Path(tmp) / "mlops"), **extra)
        t0 = time.perf_counter()
        # Through the train-model flow, as `mlops train` and the deployment run it, on the
        # benchmark's Prefect server (the search figures are inside the flow).
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
        "batch": float(result.search.parallel),
        "failed": float(result.search.failed),
    }


@contextlib.contextmanager
def prefect_server() -> Iterator[str]:
    """A Prefect server on a free loopback port, as PREFECT_API_URL for this process (a
    distributed search needs one its workers can reach)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from ops.local_servers import free_port, stop_process, wait_http

    with tempfile.TemporaryDirectory() as home:
        port = free_port()
        url = f"http://127.0.0.1:{port}/api"
        env = {
            **os.environ,
            "PREFECT_HOME": home,
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(port),
            "PREFECT_API_URL": url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
        }
        prefect = str(Path(sys.executable).parent / "prefect")
        proc = subprocess.Popen(
            [prefect, "server", "start"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            # 600 s: a fresh server runs its migrations first, minutes on two loaded cores.
            wait_http(f"{url}/health", 600, proc)
            with temporary_settings({PREFECT_API_URL: url}):
                yield url
        finally:
            stop_process(proc, timeout=15)


WORKERS, THREADS = 2, 1  # the local cluster: worker slots = 2


def all_runs(
    rows: int, trials: int, repeats: int, cluster: bool, batch: int | None = None
) -> tuple[list, list]:
    """Local searches and, with `cluster`, 2 x 1-thread cluster searches (`batch` trials in
    flight, default MLOPS_PARALLEL_TRIALS' own: four per worker slot), alternating (so both see
    the same load), all reporting to one Prefect server."""
    from ops.cli.cluster import start_cluster

    local_runs: list[dict] = []
    cluster_runs: list[dict] = []
    with prefect_server(), contextlib.ExitStack() as stack:
        found = start_cluster(workers=WORKERS, threads=THREADS) if cluster else None
        extra = {"MLOPS_PARALLEL_TRIALS": str(batch)} if batch else {}
        if found is not None:
            stack.callback(found.stop)
        for i in range(repeats):
            local_runs.append(run_once(rows, trials, seed=i))
            _print_local(i, local_runs[-1])
            if found is None:
                continue
            cluster_runs.append(
                run_once(rows, trials, seed=i, MLOPS_DASK_ADDRESS=found.address, **extra)
            )
            c = cluster_runs[-1]
            print(
                f"  run {i + 1}: cluster {c['search_wall']:.1f} s wall, {c['fit_sum']:.1f} s in "
                f"XGBoost fit, {c['failed']:.0f} failed",
                flush=True,
            )
    return local_runs, cluster_runs


def _print_local(i: int, run: dict) -> None:
    print(
        f"  run {i + 1}: local search {run['search_wall']:.1f} s wall, {run['fit_sum']:.1f} s in "
        f"XGBoost fit, ratio {run['ratio']:.3f}, log+register {run['register']:.1f} s, "
        f"test accuracy {run['accuracy']:.4f}",
        flush=True,
    )


def print_cluster(rows: int, trials: int, local_runs: list[dict], cluster: list[dict]) -> None:
    # Worker slots, not the trials in flight: those beyond the slots queue on them.
    slots = WORKERS * THREADS
    efficiency = statistics.median(c["fit_sum"] / (c["search_wall"] * slots) for c in cluster)
    local_wall = statistics.median(lo["search_wall"] for lo in local_runs)
    cluster_wall = statistics.median(c["search_wall"] for c in cluster)
    ratio = local_wall / cluster_wall
    batch = int(cluster[0]["batch"])
    print(
        f"training on a local Dask cluster ({rows:,} rows, {trials} trials, "
        f"{WORKERS} x {THREADS} thread, {batch} trials in flight):"
    )
    print(f"  cluster search wall   {cluster_wall:8.1f} s")
    print(f"  local search wall     {local_wall:8.1f} s")
    print(f"  cluster efficiency    {efficiency:8.3f}     (target >= 0.85)")
    print(f"  wall ratio local/cluster {ratio:5.2f}     (peer: the local search)")
    print(
        f"RESULT training cluster_efficiency={efficiency:.3f} target>=0.85 "
        f"{'PASS' if efficiency >= 0.85 else 'FAIL'} wall_ratio_local_over_cluster={ratio:.2f}"
    )


def main(
    rows: int = typer.Option(100_000, "--rows", help="rows of synthetic churn."),
    trials: int = typer.Option(50, "--trials", help="hyperopt trials per search."),
    repeats: int = typer.Option(3, "--repeats", help="searches; the median is reported."),
    cluster: bool = typer.Option(True, "--cluster/--no-cluster", help="the Dask comparison too."),
    batch: int = typer.Option(
        0, "--batch", help="MLOPS_PARALLEL_TRIALS for the cluster (0: its default, 4x the slots)."
    ),
) -> None:
    """Search overhead (wall / XGBoost fit time) of the train-model flow; with the cluster,
    its efficiency and the wall ratio local / cluster."""
    runs, cluster_runs = all_runs(rows, trials, repeats, cluster, batch or None)
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
    if cluster_runs:
        print_cluster(rows, trials, runs, cluster_runs)


if __name__ == "__main__":
    typer.run(main)
