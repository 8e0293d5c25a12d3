"""Where a trial's time goes on a Dask worker: one cluster search, then the workers' own
statistical profile of their task threads (distributed's sampler, `Client.profile`) over it.

The cluster efficiency of `bench_training.py` counts only `xgb.train` seconds; this shows the
rest of each task: Prefect's task-run start on the worker (`hydrated_context`, a settings
rebuild and a new API client per task run), scoring, the trial's MLflow writes. Samples are
taken only while a task runs, so "busy" (samples x interval / (search wall x slots)) says how
long the slots idled between trials, and the tree what share of a task is the fit.
Not part of `make bench` (it measures no peer).
Run: .venv/bin/python bench/profile_cluster.py [--rows N --trials N --threshold 0.01]
"""

from __future__ import annotations

import time
from typing import Any

import typer
from bench_training import THREADS, WORKERS, prefect_server, run_once


def tree_lines(node: dict[str, Any], total: int, threshold: float, depth: int = 0) -> list[str]:
    """The call tree, children before siblings, pruned below `threshold` of all samples."""
    lines: list[str] = []
    children = sorted(node["children"].values(), key=lambda child: -child["count"])
    for child in children:
        if child["count"] < threshold * total:
            continue
        where = child["description"]
        filename = where["filename"].split("site-packages/")[-1]
        share = 100 * child["count"] / total
        place = f"{where['name']} {filename}:{where['line_number']}"
        lines.append(f"{'  ' * depth}{share:5.1f}% {place}")
        lines += tree_lines(child, total, threshold, depth + 1)
    return lines


def main(
    rows: int = typer.Option(100_000, "--rows", help="rows of synthetic churn."),
    trials: int = typer.Option(50, "--trials", help="hyperopt trials of the search."),
    threshold: float = typer.Option(0.01, "--threshold", help="smallest share of samples shown."),
) -> None:
    """One cluster search (2 workers x 1 thread), then its workers' profile."""
    import dask
    from dask.utils import parse_timedelta
    from distributed import Client

    from ops.cli.cluster import start_cluster

    with prefect_server():
        found = start_cluster(workers=WORKERS, threads=THREADS)
        try:
            began = time.time()
            run = run_once(rows, trials, seed=0, MLOPS_DASK_ADDRESS=found.address)
            ended = time.time()
            with Client(found.address) as client:
                profile = client.profile(start=began, stop=ended)
        finally:
            found.stop()
    slots = WORKERS * THREADS
    # One sample per task thread per profile interval (10 ms unless configured otherwise).
    interval = parse_timedelta(dask.config.get("distributed.worker.profile.interval"))
    busy = profile["count"] * interval / (run["search_wall"] * slots)
    print(
        f"search {run['search_wall']:.1f} s wall, {run['fit_sum']:.1f} s in xgb.train, "
        f"efficiency {run['fit_sum'] / (run['search_wall'] * slots):.3f}; "
        f"task threads busy {busy:.0%} of search wall x slots"
    )
    print("\n".join(tree_lines(profile, profile["count"], threshold)))


if __name__ == "__main__":
    typer.run(main)
