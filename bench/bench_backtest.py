"""Backtest and label-free estimate benchmark: one 3-hour window of --rows (default 1,000,000)
logged predictions with their class probabilities, 30 % labelled.

The window is written straight into an nx-27017 database file before the server starts, as
bench_reporting.py does (set-up, not timed). Then, under a Prefect test server:
- the `backtest` flow replays the serving version on the window (the uniform `sample_key` sample
  of MLOPS_REPORT_MAX_ROWS rows, as reports read it): wall time and peak RSS;
- the `build-reports` flow reports on the same window: the label-free estimate's share of the
  flow's wall time.
Peers: the backtest within 60 s and 1 GB; the estimate at most 10 % of the report.
Run: .venv/bin/python bench/bench_backtest.py [--rows N --labelled F]
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import typer
from bench_reporting import CHUNK, END, WINDOW, PeakRss, start_mongo, stop_mongo, train_reference

BUDGET_SECONDS = 60.0
RSS_BUDGET_MB = 1024.0
ESTIMATE_SHARE_TARGET = 0.10


def _documents(rows: int, offset: int, total: int, version: str, predictor: Any) -> tuple:
    """Documents (with probabilities, as the API logs them) of rows [offset, offset + rows)."""
    from lifecycle.core.settings import get_settings
    from lifecycle.data.synthetic import generate_churn
    from lifecycle.stores.documents import prediction_document

    frame = generate_churn(rows, seed=321 + offset, drift=0.5)
    features = frame.drop(columns=["churn"])
    labels, proba = predictor.predict_frame(features)
    keys = [str(c) for c in predictor.spec.classes]
    step = WINDOW / total
    start = END - WINDOW
    name = get_settings().model_name
    docs = []
    for i, rec in enumerate(features.to_dict("records")):
        pid = str(uuid.uuid4())
        plain = {k: v.item() if hasattr(v, "item") else v for k, v in rec.items()}
        answer = labels[i].item() if hasattr(labels[i], "item") else labels[i]
        probabilities = dict(zip(keys, map(float, proba[i]), strict=True))
        docs.append(
            prediction_document(
                pid, start + step * (offset + i), name, version, plain, answer, probabilities
            )
        )
    return docs, [int(y) for y in frame["churn"]]


def seed_file(db_path: Path, rows: int, labelled: float, version: str, predictor: Any) -> None:
    """The window and its labels, written into the server's SQLite file (bench_reporting.py's
    seed_file explains the layout)."""
    import neosqlite
    import orjson

    conn = neosqlite.Connection(str(db_path))
    rng = np.random.default_rng(7)
    label_ts = {"$date": datetime.now(UTC).isoformat()}
    for offset in range(0, rows, CHUNK):
        docs, actuals = _documents(min(CHUNK, rows - offset), offset, rows, version, predictor)
        keep = rng.random(len(docs)) < labelled
        labels = [
            {"_id": d["_id"], "actual": a, "ts": label_ts}
            for d, a, k in zip(docs, actuals, keep, strict=True)
            if k
        ]
        if offset == 0:
            conn["predictions"].insert_many(docs[:10])
            conn["feedback"].insert_many([dict(lb, ts=datetime.now(UTC)) for lb in labels[:10]])
            docs, labels = docs[10:], labels[10:]
        for d in docs:
            d["ts"] = {"$date": d["ts"].isoformat()}
        conn.db.executemany(
            "INSERT INTO predictions (_id, data) VALUES (?, ?)",
            ((d["_id"], orjson.dumps(d).decode()) for d in docs),
        )
        conn.db.executemany(
            "INSERT INTO feedback (_id, data) VALUES (?, ?)",
            ((lb["_id"], orjson.dumps(lb).decode()) for lb in labels),
        )
        conn.db.commit()
    predictions = conn["predictions"]
    for keys in ([("ts", 1)], [("model_version", 1), ("ts", 1)], [("ts", 1), ("sample_key", 1)]):
        predictions.create_index(keys)
    predictions.create_index([("sample_key", 1)])
    conn.close()


def run_backtest(version: str) -> dict[str, Any]:
    from flows.backtest import backtest

    with PeakRss() as rss:
        t0 = time.perf_counter()
        result = backtest(version=version, window="3h", end=END)
        wall = time.perf_counter() - t0
    print(result["summary"])
    return {"wall": wall, "rss_mb": rss.peak / 2**20, "scored": result["scored"]}


def run_report() -> dict[str, Any]:
    from flows.report import build_reports

    t0 = time.perf_counter()
    result = build_reports(window="3h", end=END)
    wall = time.perf_counter() - t0
    est = result["estimated"]
    print(
        f"  report: {result['rows']:,} rows, estimated {est['metric']} {est['value']:.4f} "
        f"[{est['low']:.4f}, {est['high']:.4f}] on {est['rows']:,} sampled rows, live "
        f"{result['live_metric']:.4f}"
    )
    return {"wall": wall, "estimate": result["timings"]["estimate_seconds"]}


def main(
    rows: int = typer.Option(1_000_000, "--rows", help="Predictions in the window."),
    labelled: float = typer.Option(0.3, "--labelled", help="Share of them with a label."),
) -> None:
    """Backtest and report (with its estimate) over one window of --rows predictions."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-backtest-"))
    try:
        os.environ.update(
            MLOPS_HOME=str(tmp / "mlops"),
            MLOPS_MONGO_DB="bench",
            MLOPS_REPORTS_DIR=str(tmp / "reports"),
            MLOPS_DATA_SOURCE="synthetic:churn?rows=5000&seed=1",
            MLOPS_TRIALS="3",
            PREFECT_SERVER_ANALYTICS_ENABLED="false",  # the test server's telemetry: offline
        )
        for name in ("MLFLOW_TRACKING_URI", "MLOPS_REPORT_MAX_ROWS", "MLOPS_MODEL_NAME"):
            os.environ.pop(name, None)
        from prefect.testing.utilities import prefect_test_harness

        from lifecycle.core.settings import get_settings

        with prefect_test_harness(server_startup_timeout=300):
            version, predictor = train_reference()
            t0 = time.perf_counter()
            seed_file(tmp / "nx.db", rows, labelled, version, predictor)
            print(f"  seeded {rows:,} predictions in {time.perf_counter() - t0:.1f} s", flush=True)
            mongo, uri = start_mongo(tmp / "nx.db")
            try:
                os.environ["MONGO_URI"] = uri
                get_settings.cache_clear()
                back = run_backtest(version)
                report = run_report()
            finally:
                stop_mongo(mongo)
        share = report["estimate"] / report["wall"]
        print(f"backtest ({rows:,} predictions, {back['scored']:,} re-scored):")
        print(f"  whole flow            {back['wall']:8.1f} s   (target <= {BUDGET_SECONDS:.0f} s)")
        print(f"  peak RSS              {back['rss_mb']:8.0f} MB  (target <= {RSS_BUDGET_MB:.0f})")
        print(f"label-free estimate in the report flow ({rows:,} predictions):")
        print(f"  estimate              {report['estimate']:8.2f} s")
        print(f"  whole report flow     {report['wall']:8.1f} s")
        print(f"  estimate share        {share:8.3f}     (target <= {ESTIMATE_SHARE_TARGET})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    typer.run(main)
