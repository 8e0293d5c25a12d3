"""`make demo`: the whole loop once, locally and finitely, with the servers it needs started and
stopped by itself.

v1 serves → concept drift starts and the report shows v1's live ROC AUC and accuracy falling → a
retrain on the production labels since the drift began → v2 goes to shadow → the report's
sequential test on the paired answers promotes it → the API swaps and live accuracy recovers.
Nothing is promoted by hand.
Everything runs under `$MLOPS_HOME/demo`, on free loopback ports, through the same `mlops`
commands a user types.
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

from lifecycle.core.settings import Settings, get_settings
from ops.demo_summary import skill, summary
from ops.local_servers import free_port, wait_http, wait_port
from ops.simulation import DriftSchedule, simulate

MLOPS = str(Path(sys.executable).parent / "mlops")
DEMO_ROWS = 6_000
# Requests per second of the simulated clients. What the loop needs is counts, not time: 300
# labels for the retrain and 150 paired labels for the shadow test (half the drifted requests
# are labelled), so 80/s for 7.5 s gives them in half the wait of 40/s for 15 s. One API
# process answers far more than this on one core.
RATE = 80


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


@contextmanager
def background(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A child process, stopped with SIGTERM (then SIGKILL) whatever happens. Not SIGINT: a
    process started in the background by a non-interactive shell (a CI step, `make demo &`)
    inherits SIGINT ignored, so its children would sit out the wait and be SIGKILLed, leaving
    `mlops mongo`'s nx-27017 behind; each child stops on SIGTERM."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
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
    mongo_port, api_port, prefect_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "MLOPS_HOME": str(home),
        "MONGO_URI": f"mongodb://127.0.0.1:{mongo_port}",
        "MLOPS_MODEL_POLL_SECONDS": "2",
        "MLOPS_DATA_SOURCE": f"synthetic:churn?rows={DEMO_ROWS}&seed=1",
        "MLOPS_SEARCH_SPACE": "fast",
        # After the drift only 14 % churn: weighted, a retrain still predicts churners (F1 > 0),
        # which the gate and the live test require of a version before it serves.
        "MLOPS_CLASS_WEIGHT": "balanced",
        "MLOPS_REPORT_MIN_ROWS": "50",
        "MLOPS_TARGET": "churn",  # also the label's name in the `feedback:` source
        # The live experiment: new versions shadow the champion, and the report flow promotes
        # one on a significant paired test (README "Shadow and canary").
        "MLOPS_SHADOW_ALIAS": "challenger",
        "MLOPS_AUTO_PROMOTE": "true",
        "MLOPS_LIVE_MIN_PAIRED": "150",
        "MLOPS_MIN_METRIC": "0.6",
        "PREFECT_HOME": str(home / "prefect"),
        # One Prefect server for every step: without PREFECT_API_URL each `mlops train` and
        # `mlops report` would start (and migrate) a temporary server of its own.
        "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(prefect_port),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
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
    prefect = [str(Path(sys.executable).parent / "prefect"), "server", "start"]
    with (
        background(prefect, env, logs / "prefect.log") as prefect_proc,
        background([MLOPS, "mongo", "--port", str(mongo_port)], env, logs / "mongo.log"),
    ):
        # 300 s: a first start migrates its database; at a load of 20 on 2 cores (other test
        # suites beside it) it took over 120 s.
        wait_http(f"{env['PREFECT_API_URL']}/health", 300, prefect_proc)
        say(f"1/6 train v1: {trials} trials of hyperopt TPE over XGBoost (synthetic churn)")
        print(demo.mlops("train", "--trials", str(trials), log="train-v1.log").strip())
        wait_port(mongo_port, 30)
        return _serve_and_observe(demo, api_port, started)


def _serve_and_observe(demo: Demo, api_port: int, started: float) -> int:
    settings, env, logs = demo.settings, demo.env, demo.logs
    with (
        background([MLOPS, "serve", "--port", str(api_port)], env, logs / "api.log") as api_proc,
    ):
        say(f"2/6 v1 serves on {demo.api} (shadow alias `challenger`, empty for now)")
        wait_http(f"{demo.api}/ready", 90, api_proc)
        # No labels for the clean rows: the retrain below reads every label of its window, and
        # the window starts (with a margin for the CLI's start-up) before the drift did.
        clean = asyncio.run(simulate(demo.api, rate=RATE, duration=5, feedback_share=0, seed=10))
        _print_stats("clean", clean)

        say("3/6 concept drift starts (the label model changes, and the customers drift)")
        drift_began = time.time()
        _print_stats("drifted", asyncio.run(_drifted_round(demo.api, seed=100, duration=15)))
        before = _report(demo, drift_began, "report-drift.log")

        say("4/6 drift detected: retrain on the production labels since the drift began")
        window = f"{int(time.time() - drift_began) + 60}s"
        trained = demo.mlops(
            "train",
            "--trials",
            str(demo.trials),
            "--seed",
            "2",
            "--data",
            f"feedback:{window}",
            log="train-v2.log",
        )
        print("\n".join(line for line in trained.splitlines() if "gate:" in line or "->" in line))

        say("5/6 v2 shadows v1 on every request; the report's sequential test decides")
        shadow_began = time.time()
        _print_stats("shadowed", asyncio.run(_drifted_round(demo.api, seed=200, duration=7.5)))
        comparison = _report(demo, shadow_began, "report-shadow.log").get("experiment") or {}
        from ops.status import experiment_lines

        print("\n".join(experiment_lines({"experiment": comparison})))

        say("6/6 the API swaps to the promoted version; live accuracy recovers")
        after = _serve_until_swapped(demo, str(before.get("model_version")))
        print(demo.mlops("status", log="status.log").rstrip())
    order = [v for s in [clean, *after] for v in s.version_order]
    switch = " -> ".join(f"v{v}" for i, v in enumerate(order) if i == 0 or order[i - 1] != v)
    print(f"versions seen by clients, in order: {switch}")
    summary(before, comparison, after)
    skill(settings, str(before.get("model_version")), after)
    index = settings.reports_dir / "index.html"
    _where_to_look(demo, time.monotonic() - started, index, switch)
    return 0 if len(set(order)) > 1 and index.exists() else 1


def _report(demo: Demo, since: float, log: str) -> dict[str, Any]:
    """`mlops report` over the window since `since`; prints its line, returns its document."""
    from lifecycle.stores.prediction_store import PredictionStore

    seconds = int(time.time() - since) + 1
    out = demo.mlops("report", "--window", f"{seconds}s", log=log)
    # Its URL is on the reports server (:8088), which this finite demo does not leave running.
    print("\n".join(line for line in out.splitlines() if not line.startswith("report:")))
    store = PredictionStore.open(demo.settings, "demo")
    try:
        return store.latest_report(demo.settings.model_name) or {}
    finally:
        store.close()


def _serve_until_swapped(demo: Demo, old: str) -> list[Any]:
    """Drifted traffic in 3-s rounds until a whole round is served by the new champion (at most
    60 s; the API polls the alias every 2 s, so one to three rounds)."""
    rounds: list[Any] = []
    deadline = time.monotonic() + 60  # paces rounds of traffic; a bound, not a wait-until
    while time.monotonic() < deadline:
        rounds.append(asyncio.run(_drifted_round(demo.api, seed=300 + len(rounds), duration=3)))
        _print_stats(f"after {len(rounds)}", rounds[-1])
        if rounds[-1].ok and old not in rounds[-1].versions:
            break
    return rounds


async def _drifted_round(api: str, seed: int, duration: float) -> Any:
    one = DriftSchedule.parse("1.0")
    return await simulate(
        api,
        rate=RATE,
        duration=duration,
        drift=one,
        feedback_share=0.5,
        feedback_delay=2,
        seed=seed,
        concept=one,
    )


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
