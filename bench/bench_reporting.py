"""Reporting benchmark: the `build-reports` flow over a 3-hour window of 100,000 and of --rows
(default 1,000,000) logged predictions, 30 % labelled, in one run.

Each size gets its own nx-27017 (MongoDB wire) server and database file; one MLflow store and
one small trained model serve as the reference. Seeding is set-up, not timed: the documents
are written straight into the server's SQLite file before it starts (see `seed_file`), since
1,000,000 inserts through the wire take about 15 minutes on nx-27017. The flow then runs under
a Prefect test server. Prints, per size, the MongoDB read time (count + sample, labels), the
Evidently time, the whole-flow time and the report process's peak RSS, medians over the repeats,
and the ratio time(largest) / time(100,000).
Peers: the 60 s budget for the largest window, and the 100,000-row window (ratio target <= 1.5).
Run: .venv/bin/python bench/bench_reporting.py [--rows N --labelled F --repeats N]
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import typer

from ops.local_servers import free_port, nx_command, wait_port

BUDGET_SECONDS = 60.0
BASELINE_ROWS = 100_000
RATIO_TARGET = 1.5
END = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
WINDOW = timedelta(hours=3)
CHUNK = 100_000


def start_mongo(db_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        nx_command(db_path, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_port(port, 30, proc)
    except (RuntimeError, TimeoutError) as exc:
        proc.kill()
        raise SystemExit(f"nx-27017 did not start: {exc}") from None
    return proc, f"mongodb://127.0.0.1:{port}"


def stop_mongo(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _iso(ts: datetime) -> str:
    return ts.isoformat()


def _chunk_documents(
    rows: int, offset: int, total: int, version: str, predictor: Any, model_name: str
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Documents of rows [offset, offset + rows) of the window, and their true labels."""
    from lifecycle.data.synthetic import generate_churn
    from lifecycle.stores.documents import prediction_document

    frame = generate_churn(rows, seed=123 + offset, drift=0.5)
    features = frame.drop(columns=["churn"])
    predictions, _ = predictor.predict_frame(features)
    step = WINDOW / total
    start = END - WINDOW
    docs = []
    for i, (rec, pred) in enumerate(zip(features.to_dict("records"), predictions, strict=True)):
        pid = str(uuid.uuid4())
        plain = {k: v.item() if hasattr(v, "item") else v for k, v in rec.items()}
        pred = pred.item() if hasattr(pred, "item") else pred
        docs.append(
            prediction_document(
                pid, start + step * (offset + i), model_name, version, plain, pred, None, 1.0, pid
            )
        )
    return docs, [int(y) for y in frame["churn"]]


def seed_file(db_path: Path, rows: int, labelled: float, version: str, predictor: Any) -> None:
    """Write one window of drifted predictions and labels for a share of them straight into an
    nx-27017 database file (nx-27017 0.8.1 stores on neosqlite 1.17).

    The first chunk goes through neosqlite's own insert_many, which creates the collections in
    its layout (`id`, `_id`, `data` JSON, dates as {"$date": ISO}); the rest is the same rows
    through one executemany; the indexes are then built by neosqlite as `ensure_indexes`
    would through the server. The benchmark checks the count through the server afterwards.
    """
    import neosqlite
    import orjson

    from lifecycle.core.settings import get_settings

    model_name = get_settings().model_name
    conn = neosqlite.Connection(str(db_path))
    rng = np.random.default_rng(7)
    label_ts = {"$date": _iso(datetime.now(UTC))}
    for offset in range(0, rows, CHUNK):
        docs, actuals = _chunk_documents(
            min(CHUNK, rows - offset), offset, rows, version, predictor, model_name
        )
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
            d["ts"] = {"$date": _iso(d["ts"])}
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
    predictions.create_index([("ts", 1)])
    predictions.create_index([("model_version", 1), ("ts", 1)])
    predictions.create_index([("ts", 1), ("sample_key", 1)])
    predictions.create_index([("sample_key", 1)])
    conn.close()


def train_reference() -> tuple[str, Any]:
    """Train the reference model through the `train-model` flow; its version and predictor."""
    import mlflow.pyfunc

    from flows.train import run_train_flow
    from lifecycle.core.settings import get_settings
    from lifecycle.model.predictor import Predictor
    from lifecycle.stores import registry

    settings = get_settings()
    t0 = time.perf_counter()
    version = str(run_train_flow(settings).version)
    registry.configure(settings)
    predictor = Predictor.from_pyfunc(
        mlflow.pyfunc.load_model(f"models:/{settings.model_name}/{version}")
    )
    print(f"  trained reference model v{version} in {time.perf_counter() - t0:.1f} s")
    return version, predictor


class PeakRss:
    """The process's resident set size, sampled every 20 ms while in the `with` block."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def now() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.now())

    def __enter__(self) -> PeakRss:
        self.peak = self.now()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_reports(index: int) -> dict[str, float]:
    """One `build-reports` run over the seeded window; its timings and peak RSS."""
    from flows.report import build_reports

    with PeakRss() as rss:
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
        "rss_mb": rss.peak / 2**20,
    }
    ci = result["metric_intervals"].get(result["primary_metric"]) or [float("nan")] * 2
    print(
        f"  run {index}: MongoDB read {run['read']:.1f} s (count + sample "
        f"{run['predictions']:.1f} s + labels {run['labels']:.1f} s), Evidently "
        f"{run['evidently']:.1f} s, whole flow {run['flow']:.1f} s, peak RSS "
        f"{run['rss_mb']:.0f} MB; {result['rows']:,} rows, sample {result['rows_compared']:,} "
        f"(p={result['sample_fraction']:.4f}), {result['labelled_rows']:,} labelled, live on "
        f"{result['live_rows']:,} (sampled={result['live_sampled']}), drift share "
        f"{result['drift_share']:.2f}, live accuracy {result['live_metric']:.4f} "
        f"[{ci[0]:.4f}, {ci[1]:.4f}]",
        flush=True,
    )
    return run


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def print_size(rows: int, labelled: float, med: dict[str, float], repeats: int) -> None:
    print(f"reporting ({rows:,} predictions, {labelled:.0%} labelled, median of {repeats} runs):")
    print(
        f"  MongoDB read          {med['read']:8.1f} s   (count + sample {med['predictions']:.1f}"
        f" s + labels {med['labels']:.1f} s)"
    )
    print(f"  Evidently             {med['evidently']:8.1f} s")
    budget = f"(peer: the {BUDGET_SECONDS:.0f} s budget)"
    print(f"  whole flow            {med['flow']:8.1f} s   {budget}")
    print(f"  peak RSS              {med['rss_mb']:8.0f} MB  (target < 1024 MB)")


def bench_size(
    tmp: Path, rows: int, labelled: float, repeats: int, version: str, predictor: Any
) -> dict[str, float]:
    """Seed one window of `rows` into its own server, then run the flow `repeats` times."""
    import pymongo

    from lifecycle.core.settings import get_settings

    db_path = tmp / f"nx-{rows}.db"
    t0 = time.perf_counter()
    seed_file(db_path, rows, labelled, version, predictor)
    mongo, uri = start_mongo(db_path)
    try:
        os.environ["MONGO_URI"] = uri
        get_settings.cache_clear()
        client = pymongo.MongoClient(uri)
        stored = client[get_settings().mongo_db].command("count", "predictions")["n"]
        client.close()
        if stored != rows:
            raise SystemExit(f"seeded {rows:,} predictions but the server counts {stored:,}")
        print(
            f"  seeded {rows:,} predictions ({labelled:.0%} labelled) in "
            f"{time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        runs = [run_reports(i + 1) for i in range(repeats)]
    finally:
        stop_mongo(mongo)
    med = medians(runs)
    print_size(rows, labelled, med, repeats)
    return med


def main(
    rows: int = typer.Option(1_000_000, "--rows", help="Predictions in the large window."),
    labelled: float = typer.Option(0.3, "--labelled", help="Share of them with a label."),
    repeats: int = typer.Option(3, "--repeats", help="Flow runs per size; medians printed."),
) -> None:
    """The `build-reports` flow over 100,000 and --rows predictions: read, Evidently, flow."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-reporting-"))
    try:
        # The bench is an entry point: it configures the one settings object through the
        # environment, as `make up` would.
        os.environ.update(
            MLOPS_HOME=str(tmp / "mlops"),
            MLOPS_MONGO_DB="bench",
            MLOPS_REPORTS_DIR=str(tmp / "reports"),
            MLOPS_DATA_SOURCE="synthetic:churn?rows=5000&seed=1",
            MLOPS_TRIALS="3",
        )
        for name in (
            "MLFLOW_TRACKING_URI",
            "MLOPS_REPORT_MAX_ROWS",
            "MLOPS_REPORT_MAX_LABELLED",
            "MLOPS_MODEL_NAME",
        ):
            os.environ.pop(name, None)

        from prefect.testing.utilities import prefect_test_harness

        sizes = sorted({min(BASELINE_ROWS, rows), rows})
        # Training is a Prefect flow too: the harness is up before it runs. The test server's
        # start took over 60 s on 2 cores at load average 18, and over 120 s at load 11 (a
        # fresh server migrates its database); set-up, not timed.
        with prefect_test_harness(server_startup_timeout=300):
            version, predictor = train_reference()
            results = {n: bench_size(tmp, n, labelled, repeats, version, predictor) for n in sizes}
        small, large = results[sizes[0]], results[sizes[-1]]
        ratio = large["flow"] / small["flow"]
        print(
            f"  ratio flow({sizes[-1]:,}) / flow({sizes[0]:,})  {ratio:.3f}  "
            f"(target <= {RATIO_TARGET})"
        )
        print(
            f"  ratio flow({sizes[-1]:,}) / budget     {large['flow'] / BUDGET_SECONDS:.3f}  "
            "(target <= 1.0)"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    typer.run(main)
