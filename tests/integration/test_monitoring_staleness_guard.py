"""The Prefect-native staleness guard on a real Prefect server, with a 15 s window.

Two guards run side by side on two deployments of the `train-model` flow: `quiet` never
completes a run, `busy` completes one every few seconds. Only the quiet one may notify.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.flow_engine import run_flow
from prefect.settings import PREFECT_API_URL, temporary_settings

from deployments.automations import GUARD_NAME, TRAIN_FLOW, apply_staleness_guard
from tests.fixtures.monitoring import WebhookReceiver, start_webhook_receiver

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

WINDOW = timedelta(seconds=15)
OBSERVE_SECONDS = 36  # over two windows: the quiet guard must fire, the busy one never


@flow(name=TRAIN_FLOW, log_prints=False)
def quick_train_model() -> str:
    """Stands in for the training flow: the guard only cares that a run of it completes."""
    return "trained"


@dataclass
class GuardRun:
    receiver: WebhookReceiver
    applied_at: float  # time.monotonic()
    first_quiet: float | None  # seconds after applied_at of the first quiet notification
    busy_completions: int
    guard_ids: tuple[str, str]


@pytest.fixture(scope="module")
def guard_run(prefect_server: str) -> Iterator[GuardRun]:
    receiver, stop_receiver = start_webhook_receiver()
    with temporary_settings(updates={PREFECT_API_URL: prefect_server}):
        client = get_client(sync_client=True)
        with client:
            flow_id = client.create_flow_from_name(TRAIN_FLOW)
            client.create_deployment(flow_id, "quiet")
            busy_id = client.create_deployment(flow_id, "busy")
        ids = tuple(
            str(
                apply_staleness_guard(
                    within=WINDOW,
                    webhook_url=receiver.url(f"/{name}"),
                    deployment=name,
                    name=f"stale-{name}",
                )
            )
            for name in ("quiet", "busy")
        )
        applied_at = time.monotonic()
        first_quiet = None
        completions = 0
        while time.monotonic() - applied_at < OBSERVE_SECONDS:
            tick = time.monotonic()
            with get_client(sync_client=True) as client:
                run = client.create_flow_run_from_deployment(busy_id)
            # The real engine drives the run Pending -> Running -> Completed on the server.
            state = run_flow(quick_train_model, flow_run=run, return_type="state")
            completions += state.is_completed()
            if first_quiet is None and receiver.bodies("/quiet"):
                first_quiet = time.monotonic() - applied_at
            time.sleep(max(0.0, 4 - (time.monotonic() - tick)))
        if first_quiet is None and receiver.bodies("/quiet"):
            first_quiet = time.monotonic() - applied_at
    yield GuardRun(receiver, applied_at, first_quiet, completions, ids)
    stop_receiver()


def test_staleness_guard_notifies_when_no_run_completes(guard_run: GuardRun) -> None:
    assert guard_run.first_quiet is not None, "no notification within two windows"
    print(f"quiet guard notified {guard_run.first_quiet:.1f}s after it was applied")
    # Not before the window has passed: it fired on the absence of a completion.
    assert guard_run.first_quiet >= WINDOW.total_seconds() - 1
    text = guard_run.receiver.bodies("/quiet")[0]["text"]
    assert "ModelStale: no train-model run completed" in text
    assert "stale-quiet" in text  # rendered from {{ automation.name }} by the server


def test_staleness_guard_silent_while_runs_complete(guard_run: GuardRun) -> None:
    assert guard_run.busy_completions >= OBSERVE_SECONDS // 5
    assert guard_run.receiver.bodies("/busy") == []


def test_staleness_guard_reapply_replaces_it(prefect_server: str, guard_run: GuardRun) -> None:
    with temporary_settings(updates={PREFECT_API_URL: prefect_server}):
        new_id = apply_staleness_guard(
            within=timedelta(hours=36),
            webhook_url=guard_run.receiver.url("/quiet"),
            deployment="quiet",
            name="stale-quiet",
        )
        with get_client(sync_client=True) as client:
            same_name = client.read_automations_by_name("stale-quiet")
    assert [a.id for a in same_name] == [new_id]
    assert str(new_id) != guard_run.guard_ids[0]
    assert same_name[0].trigger.within == timedelta(hours=36)


def test_staleness_guard_command_applies_it_with_its_options(
    prefect_server: str, webhook_receiver: WebhookReceiver, tmp_path: Path
) -> None:
    # `make deploy` runs exactly this (deployments/__main__.py).
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        "MLOPS_HOME": str(tmp_path),
        "MLOPS_ALERT_WEBHOOK_URL": webhook_receiver.url("/command"),
        "MLOPS_STALE_AFTER_HOURS": "30",
    }
    command = [sys.executable, "-m", "deployments.automations", "--deployment", "quiet"]
    # 180 s: importing Prefect and talking to its server take tens of seconds under load.
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    with (
        temporary_settings(updates={PREFECT_API_URL: prefect_server}),
        get_client(sync_client=True) as client,
    ):
        (automation,) = client.read_automations_by_name(GUARD_NAME)
    assert proc.stdout.strip() == f"staleness guard {GUARD_NAME} applied ({automation.id})"
    related = [spec.root for spec in automation.trigger.match_related]
    assert {"prefect.resource.role": "flow", "prefect.resource.name": TRAIN_FLOW} in related
    assert {"prefect.resource.role": "deployment", "prefect.resource.name": "quiet"} in related
    assert automation.trigger.within == timedelta(hours=30)
