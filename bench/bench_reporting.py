"""Reporting benchmark: the `build-reports` flow over 100,000 logged predictions, 30 % labelled.

Starts its own nx-27017 (MongoDB wire) and MLflow store in a temporary directory, trains a small
model for the reference, seeds one 3-hour window (drifted inputs, labels for 30 % of the rows),
then runs the flow under a Prefect test server. Prints the MongoDB read time (predictions +
labels), the Evidently time and the whole flow time, medians over the repeats.
Peer: the 60 s budget of the issue (target: whole flow <= 60 s, ratio <= 1.0).
Run: .venv/bin/python bench/bench_reporting.py [--rows N --labelled F --repeats N]
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import typer

from ops.local_servers import free_port, nx_command, wait_port

BUDGET_SECONDS = 60.0
END = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
WINDOW = timedelta(hours=3)


def start_mongo(workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        nx_command(workdir / "nx.db", port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_port(port, 30, proc)
    except (RuntimeError, TimeoutError) as exc:
        proc.kill()
        raise SystemExit(f"nx-27017 did not start: {exc}") from None
    return proc, f"mongodb://127.0.0.1:{port}"


def seed(rows: int, labelled: float, version: str, predictor, settings) -> None:
    """One window of drifted predictions from the real model, then labels for a share of them."""
    from lifecycle.store import PredictionStore, prediction_document
    from lifecycle.synthetic import generate_churn

    frame = generate_churn(rows, seed=123, drift=0.5)
    features = frame.drop(columns=["churn"])
    predictions, _ = predictor.predict_frame(features)
    records = features.to_dict("records")
    step = WINDOW / rows
    start = END - WINDOW
    ids = [str(uuid.uuid4()) for _ in range(rows)]
    store = PredictionStore(settings.mongo_uri, settings.mongo_db, timeout_ms=10_000)
    store.ensure_indexes()
    docs = [
        prediction_document(
            pid,
            start + step * i,
            settings.model_name,
            version,
            {k: v.item() if hasattr(v, "item") else v for k, v in rec.items()},
            pred,
            latency_ms=1.0,
            request_id=pid,
        )
        for i, (pid, rec, pred) in enumerate(zip(ids, records, predictions, strict=True))
    ]
    for i in range(0, rows, 5000):
        store.insert_predictions(docs[i : i + 5000])
    chosen = np.random.default_rng(7).random(rows) < labelled
    labels = {pid: int(y) for pid, y, keep in zip(ids, frame["churn"], chosen, strict=True) if keep}
    items = list(labels.items())
    for i in range(0, len(items), 5000):
        store.upsert_feedback(dict(items[i : i + 5000]))
    store.close()


def train_reference() -> tuple[str, Any]:
    """Train the reference model through the `train-model` flow; its version and predictor."""
    import mlflow.pyfunc

    from flows.train import run_train_flow
    from lifecycle import registry
    from lifecycle.model import Predictor
    from lifecycle.settings import get_settings

    settings = get_settings()
    t0 = time.perf_counter()
    version = str(run_train_flow(settings).version)
    registry.configure(settings)
    predictor = Predictor.from_pyfunc(
        mlflow.pyfunc.load_model(f"models:/{settings.model_name}/{version}")
    )
    print(f"  trained reference model v{version} in {time.perf_counter() - t0:.1f} s")
    return version, predictor


def run_reports(index: int) -> dict[str, float]:
    """One `build-reports` run over the seeded window; its timings."""
    from flows.report import build_reports

    t0 = time.perf_counter()
    result = build_reports(window="3h", end=END)
    wall = time.perf_counter() - t0
    timings = result["timings"]
    run = {
        "read": timings["read_seconds"] + timings["feedback_seconds"],
        "predictions": timings["read_seconds"],
        "labels": timings["feedback_seconds"],
        "evidently": timings["evidently_seconds"],
        "flow": wall,
    }
    print(
        f"  run {index}: MongoDB read {run['read']:.1f} s (predictions "
        f"{run['predictions']:.1f} s + labels {run['labels']:.1f} s), Evidently "
        f"{run['evidently']:.1f} s, whole flow {run['flow']:.1f} s; "
        f"{result['rows']:,} rows, {result['labelled_rows']:,} labelled, "
        f"sampled={result['sampled']}, drift share {result['drift_share']:.2f}, "
        f"live accuracy {result['live_metric']:.4f}",
        flush=True,
    )
    return run


def print_medians(runs: list[dict[str, float]], rows: int, labelled: float) -> None:
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"reporting ({rows:,} predictions, {labelled:.0%} labelled, median of {len(runs)} runs):")
    print(
        f"  MongoDB read          {med['read']:8.1f} s   (predictions {med['predictions']:.1f}"
        f" s + labels {med['labels']:.1f} s)"
    )
    print(f"  Evidently             {med['evidently']:8.1f} s")
    print(
        f"  whole flow            {med['flow']:8.1f} s   (peer: the {BUDGET_SECONDS:.0f} s budget)"
    )
    print(f"  ratio flow / budget   {med['flow'] / BUDGET_SECONDS:8.3f}     (target <= 1.0)")


def main(
    rows: int = typer.Option(100_000, "--rows", help="Predictions in the window."),
    labelled: float = typer.Option(0.3, "--labelled", help="Share of them with a label."),
    repeats: int = typer.Option(3, "--repeats", help="Flow runs; the medians are printed."),
) -> None:
    """The `build-reports` flow over one seeded window: MongoDB read, Evidently, whole flow."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-reporting-"))
    mongo, uri = start_mongo(tmp)
    try:
        # The bench is an entry point: it configures the one settings object through the
        # environment, as `make up` would.
        os.environ.update(
            MLOPS_HOME=str(tmp / "mlops"),
            MONGO_URI=uri,
            MLOPS_MONGO_DB="bench",
            MLOPS_REPORTS_DIR=str(tmp / "reports"),
            MLOPS_DATA_SOURCE="synthetic:churn?rows=5000&seed=1",
            MLOPS_TRIALS="3",
        )
        for name in ("MLFLOW_TRACKING_URI", "MLOPS_REPORT_MAX_ROWS", "MLOPS_MODEL_NAME"):
            os.environ.pop(name, None)

        from prefect.testing.utilities import prefect_test_harness

        from lifecycle.settings import get_settings

        # Training is a Prefect flow too: the harness is up before it runs. The test server's
        # start took over 60 s on 2 cores at load average 18; the tests allow 120 s as well.
        with prefect_test_harness(server_startup_timeout=120):
            version, predictor = train_reference()
            t0 = time.perf_counter()
            seed(rows, labelled, version, predictor, get_settings())
            print(
                f"  seeded {rows:,} predictions ({labelled:.0%} labelled) in "
                f"{time.perf_counter() - t0:.1f} s",
                flush=True,
            )
            runs = [run_reports(i + 1) for i in range(repeats)]
        print_medians(runs, rows, labelled)
    finally:
        mongo.send_signal(signal.SIGTERM)
        try:
            mongo.wait(10)
        except subprocess.TimeoutExpired:
            mongo.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    typer.run(main)
