"""Stream serving against the seed's way, on the same moto_server (Kinesis) and the same model.

The peer is the seed's stream server: per record, GetRecords (Limit=1), a one-row pandas frame
through the MLflow pyfunc, and PutRecord. Ours is `mlops stream` itself (a subprocess, default
settings): batched GetRecords, the API's validator and fast path, one prediction call per batch,
PutRecords, the prediction log to MongoDB (nx-27017) and a checkpoint per batch.

Printed: records/s for both (a backlog of records put before each consumer starts, timed from its
first output to its last), the ratio (target >= 10x), and the latency from put to the result being
readable at 200 records/s (p50/p99). Medians of `--repeats` runs, with the host's load average.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lifecycle.core.waiting import wait_until
from ops.local_servers import free_port, nx_command, stop_process, wait_port

MLOPS = Path(sys.executable).parent / "mlops"
MOTO = Path(sys.executable).parent / "moto_server"
CREDENTIALS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}


def client(endpoint: str) -> Any:
    import boto3

    return boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1", **CREDENTIALS)


def make_streams(endpoint: str, shards: int = 2) -> tuple[str, str, str]:
    name = f"bench-{uuid.uuid4().hex[:6]}"
    names = (name, f"{name}-out", f"{name}-dlq")
    kinesis = client(endpoint)
    for i, stream in enumerate(names):
        kinesis.create_stream(StreamName=stream, ShardCount=shards if i == 0 else 1)
    return names


def put_rows(endpoint: str, stream: str, rows: list[dict]) -> dict[tuple[str, str], float]:
    """PutRecords in chunks of 500; (shard, sequence) -> when Kinesis accepted it."""
    kinesis, placed = client(endpoint), {}
    for i in range(0, len(rows), 500):
        entries = [
            {"Data": orjson.dumps(r), "PartitionKey": f"c{i + j}"}
            for j, r in enumerate(rows[i : i + 500])
        ]
        response = kinesis.put_records(StreamName=stream, Records=entries)
        now = time.monotonic()
        placed.update({(r["ShardId"], r["SequenceNumber"]): now for r in response["Records"]})
    return placed


# -- the seed's consumer ---------------------------------------------------------------------
def seed_consumer(
    endpoint: str,
    streams: tuple[str, ...],
    model_uri: str,
    stop: threading.Event,
    done: list[float],
) -> None:
    """One record at a time: get_records(Limit=1), pandas + pyfunc predict, put_record."""
    import mlflow.pyfunc
    import pandas as pd

    model = mlflow.pyfunc.load_model(model_uri)
    kinesis = client(endpoint)
    source, out = streams[0], streams[1]
    iterators = {
        s["ShardId"]: kinesis.get_shard_iterator(
            StreamName=source, ShardId=s["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for s in kinesis.list_shards(StreamName=source)["Shards"]
    }
    while not stop.is_set():
        idle = True
        for shard, iterator in iterators.items():
            response = kinesis.get_records(ShardIterator=iterator, Limit=1)
            iterators[shard] = response["NextShardIterator"]
            for record in response["Records"]:
                idle = False
                row = orjson.loads(record["Data"])
                prediction = model.predict(pd.DataFrame([row]))
                body = {
                    "prediction": prediction.tolist()[0],
                    "shard_id": shard,
                    "sequence_number": record["SequenceNumber"],
                }
                kinesis.put_record(
                    StreamName=out, Data=orjson.dumps(body), PartitionKey=record["PartitionKey"]
                )
                done.append(time.monotonic())
        if idle:
            time.sleep(0.2)  # the seed's poll interval when a round found nothing


# -- ours -----------------------------------------------------------------------------------------
def start_ours(endpoint: str, streams: tuple[str, ...], home: Path, mongo: str, log: Path) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "AWS_", "MONGO"))}
    port = free_port()
    env.update(
        MLOPS_HOME=str(home),
        MONGO_URI=mongo,
        MLOPS_MONGO_DB="bench",
        MLOPS_STREAM_IN=streams[0],
        MLOPS_STREAM_OUT=streams[1],
        MLOPS_STREAM_DLQ=streams[2],
        MLOPS_STREAM_METRICS_PORT=str(port),
        AWS_ENDPOINT_URL_KINESIS=endpoint,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
    )
    proc = subprocess.Popen(
        [str(MLOPS), "stream", "--wait", "30"],
        env=env,
        stdout=open(log, "ab"),  # noqa: SIM115 (the child keeps it)
        stderr=subprocess.STDOUT,
    )
    return proc, f"http://127.0.0.1:{port}/metrics"


def counter(url: str, name: str) -> float:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url, timeout=5).text
    return sum(
        s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name
    )


def throughput_ours(endpoint: str, home: Path, mongo: str, rows: list[dict], log: Path) -> float:
    import httpx

    streams = make_streams(endpoint)
    put_rows(endpoint, streams[0], rows)  # the backlog, before the consumer starts
    proc, url = start_ours(endpoint, streams, home, mongo, log)
    try:
        out = "mlops_stream_records_out_total"
        wait_until(lambda: counter(url, out), "first outputs", 300, 0.01, ignore=(httpx.HTTPError,))
        t0 = time.monotonic()
        wait_until(
            lambda: counter(url, out), "every output", 600, 0.05, done=lambda n: n >= len(rows)
        )
        return len(rows) / (time.monotonic() - t0)
    finally:
        stop_process(proc, 60)


def throughput_seed(endpoint: str, model_uri: str, rows: list[dict]) -> float:
    streams = make_streams(endpoint)
    put_rows(endpoint, streams[0], rows)
    stop, done = threading.Event(), []
    worker = threading.Thread(target=seed_consumer, args=(endpoint, streams, model_uri, stop, done))
    worker.start()
    try:
        wait_until(lambda: len(done), "the seed's first output", 300, 0.01)
        t0 = done[0]
        wait_until(
            lambda: len(done), "the seed's outputs", 900, 0.05, done=lambda n: n >= len(rows)
        )
        return (len(rows) - 1) / (done[-1] - t0)
    finally:
        stop.set()
        worker.join(60)


# -- latency at a steady rate -------------------------------------------------------------------
def latency_at(
    endpoint: str, streams: tuple[str, ...], rows: list[dict], rate: float, seconds: float
) -> list[float]:
    """Put `rate` records/s for `seconds` (10 per PutRecords), read the results every 20 ms;
    the put -> readable delay of every record, in ms."""
    kinesis, placed, latencies = client(endpoint), {}, []
    stop = threading.Event()

    def read() -> None:
        reader = client(endpoint)
        shard = reader.list_shards(StreamName=streams[1])["Shards"][0]["ShardId"]
        it = reader.get_shard_iterator(
            StreamName=streams[1], ShardId=shard, ShardIteratorType="LATEST"
        )["ShardIterator"]
        while not stop.is_set() or len(latencies) < len(placed):
            response = reader.get_records(ShardIterator=it, Limit=10_000)
            it, now = response["NextShardIterator"], time.monotonic()
            for r in response["Records"]:
                body = orjson.loads(r["Data"])
                put_at = placed.get((body["shard_id"], body["sequence_number"]))
                if put_at is not None and body.get("row", 0) == 0:
                    latencies.append((now - put_at) * 1000)
            if stop.is_set() and not response["Records"] and time.monotonic() > deadline:
                break
            time.sleep(0.02)  # the reader's poll interval: part of what is measured

    deadline = float("inf")
    reader = threading.Thread(target=read)
    reader.start()
    per_put, start, i = 10, time.monotonic(), 0
    while time.monotonic() - start < seconds:
        chunk = [rows[(i + j) % len(rows)] for j in range(per_put)]
        entries = [
            {"Data": orjson.dumps(r), "PartitionKey": f"l{i + j}"} for j, r in enumerate(chunk)
        ]
        response = kinesis.put_records(StreamName=streams[0], Records=entries)
        now = time.monotonic()
        placed.update({(r["ShardId"], r["SequenceNumber"]): now for r in response["Records"]})
        i += per_put
        time.sleep(max(0.0, start + i / rate - time.monotonic()))  # open-loop pacing
    deadline = time.monotonic() + 30
    stop.set()
    reader.join(60)
    return latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def latency_ours(
    endpoint: str, home: Path, mongo: str, rows: list[dict], rate: float, seconds: float, log: Path
) -> list[float]:
    import httpx

    streams = make_streams(endpoint)
    proc, url = start_ours(endpoint, streams, home, mongo, log)
    try:
        put_rows(endpoint, streams[0], rows[:10])  # warm-up: the model is loaded and serving
        wait_until(
            lambda: counter(url, "mlops_stream_records_out_total"),
            "warm-up outputs",
            300,
            0.05,
            done=lambda n: n >= 10,
            ignore=(httpx.HTTPError,),
        )
        return latency_at(endpoint, streams, rows, rate, seconds)
    finally:
        stop_process(proc, 60)


def latency_seed(
    endpoint: str, model_uri: str, rows: list[dict], rate: float, seconds: float
) -> list[float]:
    streams = make_streams(endpoint)
    stop, done = threading.Event(), []
    worker = threading.Thread(target=seed_consumer, args=(endpoint, streams, model_uri, stop, done))
    worker.start()
    try:
        put_rows(endpoint, streams[0], rows[:10])
        wait_until(lambda: len(done), "the seed's warm-up", 300, 0.05, done=lambda n: n >= 10)
        return latency_at(endpoint, streams, rows, rate, seconds)
    finally:
        stop.set()
        worker.join(60)


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(
    rows: Annotated[int, typer.Option(help="backlog records for our consumer per run")] = 10_000,
    seed_rows: Annotated[int, typer.Option(help="backlog records for the seed's per run")] = 300,
    repeats: Annotated[int, typer.Option(min=1, help="runs of each throughput figure")] = 3,
    rate: Annotated[float, typer.Option(help="records/s for the latency figure")] = 200.0,
    seconds: Annotated[float, typer.Option(help="seconds of steady traffic")] = 15.0,
    home: Annotated[
        Path | None,
        typer.Option(
            help="an MLOPS_HOME with a champion (default: train one in a temporary folder)"
        ),
    ] = None,
) -> None:
    """Stream serving: records/s against the seed's consumer, and latency at a steady rate."""
    from lifecycle.core.settings import Settings
    from lifecycle.data.synthetic import churn_features
    from lifecycle.stores import registry

    work = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    moto_port, mongo_port = free_port(), free_port()
    moto = subprocess.Popen(
        [str(MOTO), "-H", "127.0.0.1", "-p", str(moto_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    mongo = subprocess.Popen(
        nx_command(work / "mongo.db", mongo_port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(moto_port, 30, moto)
        wait_port(mongo_port, 30, mongo)
        endpoint, mongo_uri = f"http://127.0.0.1:{moto_port}", f"mongodb://127.0.0.1:{mongo_port}"
        if home is None:
            from bench_serving import train_model

            home = work / "mlops"
            print("training the model (train-model flow, 3,000 rows, 3 trials) ...", flush=True)
            train_model(home, 3000, 3)
        settings = Settings(MLOPS_HOME=str(home))
        registry.use(settings)
        model_uri = f"models:/{settings.model_name}@champion"
        data = churn_features(max(rows, seed_rows), seed=3).to_dict(orient="records")
        ours, seed = [], []
        for run in range(repeats):  # interleaved, so a host getting busier moves both alike
            ours.append(throughput_ours(endpoint, home, mongo_uri, data[:rows], work / "ours.log"))
            seed.append(throughput_seed(endpoint, model_uri, data[:seed_rows]))
            print(
                f"run {run + 1}: ours {ours[-1]:,.0f} records/s, seed {seed[-1]:,.1f} "
                f"records/s (load {load()})",
                flush=True,
            )
        lat_ours = latency_ours(endpoint, home, mongo_uri, data, rate, seconds, work / "lat.log")
        lat_seed = latency_seed(endpoint, model_uri, data, rate, seconds)
        report(ours, seed, lat_ours, lat_seed, rate, seconds)
    finally:
        stop_process(moto)
        stop_process(mongo)
    print(f"(work folder {work}; load average {load()})")


def report(
    ours: list[float],
    seed: list[float],
    lat_ours: list[float],
    lat_seed: list[float],
    rate: float,
    seconds: float,
) -> None:
    o, s = statistics.median(ours), statistics.median(seed)
    put = round(rate * seconds)
    print(
        f"\n| consumer | records/s (median of {len(ours)}) | put -> result at {rate:.0f}/s: "
        "p50 ms | p99 ms | results seen |"
    )
    print("| --- | --- | --- | --- | --- |")
    for name, value, lat in (
        ("seed (per record)", s, lat_seed),
        ("ours (mlops stream)", o, lat_ours),
    ):
        print(
            f"| {name} | {value:,.1f} | {pct(lat, 0.5):,.0f} | {pct(lat, 0.99):,.0f} | "
            f"{len(lat)} of {put} |"
        )
    print(f"\nthroughput ratio ours / seed: {o / s:.1f}x (target >= 10x)")


if __name__ == "__main__":
    typer.run(main)
