"""`make demo`: the whole loop once, locally and finitely, with the servers it needs started and
stopped by itself.

train v1 → serve → clean traffic → drifted traffic while v2 trains and is promoted (the API
switches version mid-traffic) → delayed ground truth → report → summary. Everything runs under
`$MLOPS_HOME/demo`, on free loopback ports, through the same `mlops` commands a user types.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from lifecycle import registry
from lifecycle.settings import Settings, get_settings
from ops.local_servers import free_port, wait_http, wait_port
from ops.simulation import DriftSchedule, simulate

MLOPS = str(Path(sys.executable).parent / "mlops")
DEMO_ROWS = 6_000


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


@contextmanager
def background(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A child process, stopped with SIGINT (then SIGKILL) whatever happens."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


def run_step(args: list[str], env: dict[str, str], log: Path) -> str:
    """Run one `mlops` command to completion; its output goes to the log and is returned."""
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{' '.join(args[1:3])} failed (see {log}):\n" + "\n".join(tail))
    return proc.stdout


def run_demo(trials: int = 10, keep: bool = False) -> int:
    """Returns the exit code: 0 when the loop ran end to end."""
    base = get_settings()
    home = base.home / "demo"
    if home.exists() and not keep:
        shutil.rmtree(home)
    (home / "logs").mkdir(parents=True, exist_ok=True)
    logs = home / "logs"
    mongo_port, api_port = free_port(), free_port()
    env = {
        **os.environ,
        "MLOPS_HOME": str(home),
        "MONGO_URI": f"mongodb://127.0.0.1:{mongo_port}",
        "MLOPS_MODEL_POLL_SECONDS": "2",
        "MLOPS_DATA_SOURCE": f"synthetic:churn?rows={DEMO_ROWS}&seed=1",
        "MLOPS_SEARCH_SPACE": "fast",
        "MLOPS_REPORT_MIN_ROWS": "50",
        "PREFECT_HOME": str(home / "prefect"),
        # `mlops train` runs Prefect's temporary server; its 20 s start-up limit is what an
        # idle core needs, and the demo runs it beside the API and the traffic on 2 cores.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    os.environ.update({k: env[k] for k in ("MLOPS_HOME", "MONGO_URI")})
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    get_settings.cache_clear()
    settings = get_settings()
    started = time.monotonic()
    try:
        return _loop(settings, env, logs, trials, mongo_port, api_port, started)
    except (RuntimeError, TimeoutError) as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1


@dataclass
class Demo:
    """What every step of one demo run needs."""

    settings: Settings
    env: dict[str, str]
    logs: Path
    trials: int
    api: str

    def mlops(self, *args: str, log: str) -> str:
        return run_step([MLOPS, *args], self.env, self.logs / log)


def _loop(
    settings: Settings,
    env: dict[str, str],
    logs: Path,
    trials: int,
    mongo_port: int,
    api_port: int,
    started: float,
) -> int:
    demo = Demo(settings, env, logs, trials, f"http://127.0.0.1:{api_port}")
    say(f"1/6 train v1: {trials} trials of hyperopt TPE over XGBoost (synthetic churn)")
    print(demo.mlops("train", "--trials", str(trials), log="train-v1.log").strip())
    with (
        background([MLOPS, "mongo", "--port", str(mongo_port)], env, logs / "mongo.log"),
        background([MLOPS, "serve", "--port", str(api_port)], env, logs / "api.log") as api_proc,
    ):
        wait_port(mongo_port, 30)
        say(f"2/6 serve champion on {demo.api}")
        wait_http(f"{demo.api}/ready", 90, api_proc)
        print(httpx.get(f"{demo.api}/model", timeout=5).text)

        say("3/6 clean traffic: 40 requests/s for 15 s, ground truth for half of them after 3 s")
        clean = asyncio.run(
            simulate(demo.api, rate=40, duration=15, feedback_share=0.5, feedback_delay=3, seed=10)
        )
        _print_stats("clean", clean)

        say("4/6 drifted traffic while v2 trains; the API switches when champion moves")
        drifted = _drift_while_retraining(demo)
        order = [v for s in [clean, *drifted] for v in s.version_order]
        switch = " -> ".join(f"v{v}" for i, v in enumerate(order) if i == 0 or order[i - 1] != v)
        print(f"versions seen by clients, in order: {switch}")

        say("5/6 build the Evidently report over the last hour (drift + live accuracy)")
        report = demo.mlops("report", "--window", "1h", log="report.log")
        # Its URL is on the reports server (:8088), which this finite demo does not leave
        # running: show the files, and how to serve them, instead.
        print("\n".join(line for line in report.splitlines() if not line.startswith("report:")))

        say("6/6 summary")
        print(demo.mlops("status", log="status.log").rstrip())
    index = settings.reports_dir / "index.html"
    _where_to_look(demo, time.monotonic() - started, index, switch)
    return 0 if len(set(order)) > 1 and index.exists() else 1


def _drift_while_retraining(demo: Demo) -> list[Any]:
    """Drifted traffic in 5-s rounds while v2 trains, until clients have seen the swap."""
    v1 = registry.version_by_alias(registry.CHAMPION, demo.settings)
    source = f"synthetic:churn?rows={DEMO_ROWS}&seed=2"
    log = demo.logs / "train-v2.log"
    trainer = subprocess.Popen(
        [MLOPS, "train", "--trials", str(demo.trials), "--seed", "2", "--data", source],
        env=demo.env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    drifted: list[Any] = []
    trained = False
    deadline = time.monotonic() + 300  # paces rounds of traffic; a bound, not a wait-until
    while time.monotonic() < deadline:
        drifted.append(asyncio.run(_drifted_round(demo.api, seed=100 + len(drifted))))
        if not trained and trainer.poll() is not None:
            if trainer.returncode != 0:
                raise RuntimeError(f"training v2 failed (see {log})")
            trained = True
            print(log.read_text().strip().splitlines()[-4])
            _promote_if_gate_kept(demo.settings, v1)
        versions = {v for s in drifted for v in s.version_order}
        if trained and len(versions) > 1 and len(drifted) >= 3:
            break
    for i, stats in enumerate(drifted):
        _print_stats(f"drifted {i + 1}", stats)
    return drifted


async def _drifted_round(api: str, seed: int) -> Any:
    drift = DriftSchedule.parse("1.0")
    return await simulate(
        api, rate=40, duration=5, drift=drift, feedback_share=0.5, feedback_delay=3, seed=seed
    )


def _promote_if_gate_kept(settings: Settings, v1: Any) -> None:
    """The gate may keep v2 as challenger (not better): promote it by hand, as an operator
    would with `mlops promote`, to show the hot swap."""
    champion = registry.version_by_alias(registry.CHAMPION, settings)
    if champion is not None and v1 is not None and champion.version == v1.version:
        v2 = registry.aliases(settings).get(registry.CHALLENGER)
        print(f"gate kept v{v2} as challenger; promoting it by hand (mlops promote)")
        registry.promote(v2, settings)


def _where_to_look(demo: Demo, seconds: float, index: Path, switch: str) -> None:
    settings = demo.settings
    print(
        f"\nThe loop ran in {seconds:.0f} s. Where to look:\n"
        f"  reports index   {index}\n"
        f"  serve reports   MLOPS_HOME={settings.home} .venv/bin/python -m reporting.nginx "
        f"--port 8088   (then {settings.reports_base_url}/)\n"
        f"  MLflow UI       .venv/bin/mlflow ui --backend-store-uri "
        f"{settings.mlflow_tracking_uri}\n"
        f"  logs            {demo.logs}\n"
        f"  versions seen   {switch}"
    )


def _print_stats(name: str, stats) -> None:
    acc = f"{stats.accuracy:.3f}" if stats.accuracy is not None else "n/a"
    versions = ",".join(f"v{v}:{n}" for v, n in sorted(stats.versions.items()))
    print(
        f"  {name:<10} {stats.requests} requests, {stats.ok} ok, {stats.failed} failed, "
        f"versions [{versions}], {stats.feedback_sent} labels, accuracy on labelled {acc}"
    )
