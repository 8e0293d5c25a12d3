"""`make up`'s stack (`mlops up`): every URL answers, a prediction is served from the champion the
first training run produced, and Ctrl-C leaves no child process behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from lifecycle.core.waiting import wait_until
from lifecycle.data import synthetic
from tests.fixtures.prefect import database_template
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


def kill_tree(stack: subprocess.Popen, known: set[int]) -> None:
    """Ctrl-C the stack if it still runs, then SIGKILL whatever of its tree is left: a failed
    run must not leave servers behind for the tests after it (honcho's children outlive a
    SIGKILLed honcho)."""
    pids = descendants(stack.pid) | known
    if stack.poll() is None:
        stack.send_signal(signal.SIGINT)
        try:
            stack.wait(30)
        except subprocess.TimeoutExpired:
            stack.kill()
    for pid in pids | descendants(stack.pid):
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def wait_ok(
    url: str, timeout: float, stack: subprocess.Popen, ok=lambda r: r.status_code == 200
) -> httpx.Response:
    """The first answer of `url` that is `ok`; a refused connection while it starts is "not yet",
    and a stack that exited fails at once instead of waiting out the bound."""

    def probe() -> httpx.Response:
        if stack.poll() is not None:
            raise AssertionError(f"mlops up exited with {stack.returncode} before {url} answered")
        return client.get(url)

    with httpx.Client(timeout=3) as client:  # one per wait: a client per poll costs 28 ms
        return wait_until(
            probe, f"{url} answering as expected", timeout, 0.5, done=ok, ignore=(httpx.HTTPError,)
        )


def stack_env(home: Path) -> dict[str, str]:
    """The environment of `mlops up`: a fresh MLOPS_HOME and a 3-trial first training."""
    env = {
        **os.environ,
        "MLOPS_HOME": str(home),
        "MLOPS_TRIALS": "3",
        "MLOPS_SEARCH_SPACE": "fast",
        "MLOPS_DATA_SOURCE": "synthetic:churn?rows=3000&seed=7",
        "MLOPS_MIN_METRIC": "0.6",
        "MLOPS_MODEL_POLL_SECONDS": "2",
    }
    for name in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "MONGO_URI"):
        env.pop(name, None)
    return env


def test_stack_starts_serves_and_stops_without_leftovers(tmp_path: Path) -> None:
    require_binary("nginx")
    ports = {name: free_port() for name in ("api", "mlflow", "prefect", "mongo", "nginx")}
    # The stack's Prefect server finds a database already migrated (the suite's template):
    # what is under test is the stack, not Prefect's two minutes of first-start migrations on
    # two loaded cores.
    prefect_home = tmp_path / "mlops" / "prefect"
    prefect_home.mkdir(parents=True)
    shutil.copyfile(database_template(), prefect_home / "prefect.db")
    log = (tmp_path / "stack.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN / "mlops"), "up", *[f"--{k}-port={v}" for k, v in ports.items()]],
        env=stack_env(tmp_path / "mlops"),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    pids: set[int] = set()
    try:
        # Bounds: several times what each step takes alone, since on 2 cores the servers start
        # side by side with the other xdist worker's tests (the API waited over 60 s, and the
        # Prefect server over 120 s, in full-suite runs here).
        wait_ok(f"http://127.0.0.1:{ports['prefect']}/api/health", 300, proc)
        wait_ok(f"http://127.0.0.1:{ports['mlflow']}/health", 180, proc)
        wait_ok(f"http://127.0.0.1:{ports['api']}/health", 180, proc)
        # no report yet: nginx answers, with 404 for the missing index
        nginx = f"http://127.0.0.1:{ports['nginx']}/"
        wait_ok(nginx, 30, proc, lambda r: r.status_code in (200, 404))
        # the worker applied the deployments and Quick-ran the first training
        ready = wait_ok(f"http://127.0.0.1:{ports['api']}/ready", 240, proc)
        assert ready.json()["model_version"] == "1"
        record = synthetic.churn_features(1, seed=5).to_dict("records")[0]
        answer = httpx.post(f"http://127.0.0.1:{ports['api']}/predict", json=record, timeout=10)
        assert answer.status_code == 200 and answer.json()["predictions"][0] in (0, 1)
        pids = descendants(proc.pid)
        assert len(pids) >= 6, pids  # prefect, worker, mlflow, mongo (+ nx-27017), api, nginx

        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        proc.wait(30)
        # 10 s: the children got SIGINT with the stack and only need to exit, even on 2 busy
        # cores
        wait_until(
            lambda: sorted(p for p in pids if alive(p)),
            f"no child process left behind (see {tmp_path / 'stack.log'})",
            10,
            interval=0.2,
            done=lambda left: not left,
        )
    finally:
        kill_tree(proc, pids)
        log.close()
    text = (tmp_path / "stack.log").read_text()
    assert f"http://127.0.0.1:{ports['api']}/docs" in text
    assert f"http://127.0.0.1:{ports['prefect']}" in text
