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
from pathlib import Path

import httpx

from lifecycle.settings import Settings, get_settings
from ops.local_servers import free_port, wait_http, wait_port

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


def _loop(
    settings: Settings,
    env: dict[str, str],
    logs: Path,
    trials: int,
    mongo_port: int,
    api_port: int,
    started: float,
) -> int:
    from lifecycle import registry
    from ops.simulation import DriftSchedule, simulate

    api = f"http://127.0.0.1:{api_port}"
    say(f"1/6 train v1: {trials} trials of hyperopt TPE over XGBoost (synthetic churn)")
    print(run_step([MLOPS, "train", "--trials", str(trials)], env, logs / "train-v1.log").strip())

    with (
        background([MLOPS, "mongo", "--port", str(mongo_port)], env, logs / "mongo.log"),
        background([MLOPS, "serve", "--port", str(api_port)], env, logs / "api.log") as api_proc,
    ):
        wait_port(mongo_port, 30)
        say(f"2/6 serve champion on {api}")
        wait_http(f"{api}/ready", 90, api_proc)
        print(httpx.get(f"{api}/model", timeout=5).text)

        say("3/6 clean traffic: 40 requests/s for 15 s, ground truth for half of them after 3 s")
        clean = asyncio.run(
            simulate(api, rate=40, duration=15, feedback_share=0.5, feedback_delay=3, seed=10)
        )
        _print_stats("clean", clean)

        say("4/6 drifted traffic while v2 trains; the API switches when champion moves")
        v1 = registry.version_by_alias(registry.CHAMPION, settings)
        trainer = subprocess.Popen(
            [
                MLOPS,
                "train",
                "--trials",
                str(trials),
                "--seed",
                "2",
                "--data",
                f"synthetic:churn?rows={DEMO_ROWS}&seed=2",
            ],
            env=env,
            stdout=(logs / "train-v2.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        drifted = []
        promoted_at: float | None = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            drifted.append(
                asyncio.run(
                    simulate(
                        api,
                        rate=40,
                        duration=5,
                        drift=DriftSchedule.parse("1.0"),
                        feedback_share=0.5,
                        feedback_delay=3,
                        seed=100 + len(drifted),
                    )
                )
            )
            if promoted_at is None and trainer.poll() is not None:
                if trainer.returncode != 0:
                    raise RuntimeError(f"training v2 failed (see {logs / 'train-v2.log'})")
                promoted_at = time.monotonic()
                print((logs / "train-v2.log").read_text().strip().splitlines()[-4])
                champion = registry.version_by_alias(registry.CHAMPION, settings)
                if champion is not None and v1 is not None and champion.version == v1.version:
                    # The gate kept v2 as challenger (it was not better): promote it by hand, as
                    # an operator would with `mlops promote`, to show the hot swap.
                    v2 = registry.aliases(settings).get("challenger")
                    print(f"gate kept v{v2} as challenger; promoting it by hand (mlops promote)")
                    registry.promote(v2, settings)
            versions = {v for s in drifted for v in s.version_order}
            if promoted_at is not None and len(versions) > 1 and len(drifted) >= 3:
                break
        for i, stats in enumerate(drifted):
            _print_stats(f"drifted {i + 1}", stats)
        order = [v for s in [clean, *drifted] for v in s.version_order]
        switch = " -> ".join(f"v{v}" for i, v in enumerate(order) if i == 0 or order[i - 1] != v)
        print(f"versions seen by clients, in order: {switch}")

        say("5/6 build the Evidently report over the last hour (drift + live accuracy)")
        print(run_step([MLOPS, "report", "--window", "1h"], env, logs / "report.log").strip())

        say("6/6 summary")
        print(run_step([MLOPS, "status"], env, logs / "status.log").rstrip())
    total = time.monotonic() - started
    index = settings.reports_dir / "index.html"
    print(
        f"\nThe loop ran in {total:.0f} s. Where to look:\n"
        f"  reports index   {index}\n"
        f"  MLflow UI       .venv/bin/mlflow ui --backend-store-uri "
        f"{settings.mlflow_tracking_uri}\n"
        f"  logs            {logs}\n"
        f"  versions seen   {switch}"
    )
    return 0 if len(set(order)) > 1 and index.exists() else 1


def _print_stats(name: str, stats) -> None:
    acc = f"{stats.accuracy:.3f}" if stats.accuracy is not None else "n/a"
    versions = ",".join(f"v{v}:{n}" for v, n in sorted(stats.versions.items()))
    print(
        f"  {name:<10} {stats.requests} requests, {stats.ok} ok, {stats.failed} failed, "
        f"versions [{versions}], {stats.feedback_sent} labels, accuracy on labelled {acc}"
    )
