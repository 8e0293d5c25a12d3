"""`make up`'s stack (`mlops up`): every URL answers, a prediction is served from the champion the
first training run produced, and Ctrl-C leaves no child process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from lifecycle import synthetic
from tests.fixtures.servers import free_port, require_binary

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def descendants(root: int) -> set[int]:
    """PIDs below `root`, from /proc (each process's parent)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_ok(url: str, timeout: float, ok=lambda r: r.status_code == 200) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=3)
            if ok(response):
                return response
            last = response.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{url} not ready after {timeout}s (last: {last})")


def test_stack_starts_serves_and_stops_without_leftovers(tmp_path: Path) -> None:
    require_binary("nginx")
    ports = {name: free_port() for name in ("api", "mlflow", "prefect", "mongo", "nginx")}
    env = {
        **os.environ,
        "MLOPS_HOME": str(tmp_path / "mlops"),
        "MLOPS_TRIALS": "3",
        "MLOPS_SEARCH_SPACE": "fast",
        "MLOPS_DATA_SOURCE": "synthetic:churn?rows=3000&seed=7",
        "MLOPS_MIN_METRIC": "0.6",
        "MLOPS_MODEL_POLL_SECONDS": "2",
    }
    for name in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "MONGO_URI"):
        env.pop(name, None)
    log = (tmp_path / "stack.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN / "mlops"), "up", *[f"--{k}-port={v}" for k, v in ports.items()]],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    pids: set[int] = set()
    try:
        wait_ok(f"http://127.0.0.1:{ports['prefect']}/api/health", 120)
        wait_ok(f"http://127.0.0.1:{ports['mlflow']}/health", 60)
        wait_ok(f"http://127.0.0.1:{ports['api']}/health", 60)
        # no report yet: nginx answers, with 404 for the missing index
        wait_ok(f"http://127.0.0.1:{ports['nginx']}/", 30, lambda r: r.status_code in (200, 404))
        # the worker applied the deployments and Quick-ran the first training
        ready = wait_ok(f"http://127.0.0.1:{ports['api']}/ready", 240)
        assert ready.json()["model_version"] == "1"
        record = synthetic.churn_features(1, seed=5).to_dict("records")[0]
        answer = httpx.post(f"http://127.0.0.1:{ports['api']}/predict", json=record, timeout=10)
        assert answer.status_code == 200 and answer.json()["predictions"][0] in (0, 1)
        pids = descendants(proc.pid)
        assert len(pids) >= 6, pids  # prefect, worker, mlflow, mongo (+ nx-27017), api, nginx

        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.2)
    left = sorted(p for p in pids if alive(p))
    assert not left, f"left behind: {left}; see {tmp_path / 'stack.log'}"
    text = (tmp_path / "stack.log").read_text()
    assert f"http://127.0.0.1:{ports['api']}/docs" in text
    assert f"http://127.0.0.1:{ports['prefect']}" in text
