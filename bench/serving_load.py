"""The serving benchmark's measurements (bench/bench_serving.py): wrk runs and their medians,
a batch request's latency, the prediction log's backlog, metrics and stored documents."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from lifecycle.core.waiting import WaitTimeout, wait_until

# CPU pinning (--pin): the load generator's prefix (`taskset -c 0`), set by bench_serving.
SIDE_CPU: list[str] = []


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wrk(url: str, body: str, duration: int, workdir: Path) -> dict[str, float]:
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body)}\n"
    )
    out = subprocess.run(
        [*SIDE_CPU, "wrk", "-t1", "-c8", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{non2xx.group(1)} non-2xx answers from {url}:\n{out}")
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),
        "p99_ms": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def median_runs(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def batch_latency(url: str, batch: list[dict[str, Any]], repeats: int = 15) -> float:
    times = []
    with httpx.Client(timeout=60) as client:
        client.post(url, json=batch)  # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            r = client.post(url, json=batch)
            times.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200 and len(r.json()["predictions"]) == len(batch)
    return statistics.median(times)


def drain(url: str, timeout: float = 120.0) -> tuple[float, float]:
    """(documents not yet in MongoDB right after the load, seconds until there are none)."""
    names = ("mlops_prediction_log_queue", "mlops_prediction_log_spooled")
    start = time.perf_counter()
    first = metric_sum(url, *names)
    try:
        wait_until(
            lambda: metric_sum(url, *names),
            "the prediction log to catch up",
            timeout,
            interval=0.05,
            done=lambda backlog: backlog == 0,
        )
    except WaitTimeout as exc:  # reported as a long drain, not a failed benchmark
        print(f"  {exc}", flush=True)
    return first, time.perf_counter() - start


def metric_sum(url: str, *names: str) -> float:
    """The sum of every sample of the named metrics on a /metrics page."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url, timeout=30).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in names
    )


def count_docs(uri: str) -> int:
    from pymongo import MongoClient

    with MongoClient(uri, serverSelectionTimeoutMS=10_000) as client:
        return client["bench"]["predictions"].count_documents({})
