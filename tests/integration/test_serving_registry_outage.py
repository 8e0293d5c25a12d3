"""Start-up without a registry: the API starts, /ready and predictions answer 503 with the
reason, and it begins serving when a registry with a champion appears, with no restart. When
the registry goes away again, the API keeps serving."""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from lifecycle.core.waiting import wait_until
from tests.fixtures.servers import free_port, launch_mlflow_server, stop_process, wait_for_port
from tests.fixtures.serving import api_env, churn_records
from tests.fixtures.training import TrainedRegistry, copy_registry

pytestmark = pytest.mark.integration

POLL_SECONDS = 1.0  # api_env's MLOPS_MODEL_POLL_SECONDS


def test_api_waits_for_the_registry_then_serves_without_restart(
    trained_registry: TrainedRegistry, tmp_path, mongo_server, start_api
) -> None:
    registry_home = tmp_path / "registry"
    copy_registry(trained_registry.settings, registry_home)  # the store the server will serve
    port = free_port()
    env = api_env(
        tmp_path / "api",
        mongo_server.uri,
        "outage",
        MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}",
        # fail fast per attempt: the API's own backoff does the retrying
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
        MLFLOW_HTTP_REQUEST_TIMEOUT="5",
    )
    api = start_api(env, wait=False)
    row = churn_records(1, seed=3)[0]
    with httpx.Client(base_url=api.url, timeout=30) as client:
        assert client.get("/health").status_code == 200
        # The first attempt fails within MLFLOW_HTTP_REQUEST_TIMEOUT (connection refused: at
        # once); 30 s covers the API's start-up on a busy 2-core machine.
        ready = wait_until(
            lambda: client.get("/ready"),
            "/ready to give the registry as the reason",
            30,
            done=lambda r: "registry" in r.json().get("reason", ""),
        )
        assert ready.status_code == 503
        refused = client.post("/predict", json=row)
        assert refused.status_code == 503 and "registry unreachable" in refused.json()["detail"]
        mlflow_format = client.post("/invocations", json={"inputs": [row]})
        assert mlflow_format.status_code == 503 and "message" in mlflow_format.json()

        server = _start_mlflow_server(registry_home, port, tmp_path)
        try:
            # The API's backoff retries at most every min(poll, 30) s; then the load: 90 s
            # covers both on a busy 2-core machine.
            try:
                wait_until(
                    lambda: client.get("/ready").status_code,
                    "the API to load the champion once the registry is up",
                    90,
                    interval=0.25,
                    done=lambda status: status == 200,
                )
            except TimeoutError as exc:
                raise AssertionError(f"{exc}\n{api.logs()}") from None
            served = client.post("/predict", json=row)
            assert served.status_code == 200
            assert served.json()["model_version"] == trained_registry.version
        finally:
            stop_process(server)

        _wait_for_polls(client, 3)  # several polls against a registry that is gone
        assert client.get("/ready").status_code == 200
        again = client.post("/predict", json=row)
        assert (
            again.status_code == 200 and again.json()["model_version"] == trained_registry.version
        )


def _wait_for_polls(client: httpx.Client, polls: int) -> None:
    """Until the API has checked the alias `polls` more times (each check ends at least one poll
    interval after the one before); a failed check against a refused port returns at once."""
    at = datetime.fromisoformat(client.get("/model").json()["checked_at"])
    wait_until(
        lambda: datetime.fromisoformat(client.get("/model").json()["checked_at"]),
        f"{polls} more checks of the alias",
        30,
        done=lambda checked: checked >= at + timedelta(seconds=polls * POLL_SECONDS),
    )


def _start_mlflow_server(home: Path, port: int, tmp_path: Path) -> subprocess.Popen:
    proc = launch_mlflow_server(home / "mlflow.db", port, tmp_path / "mlflow-server.log")
    wait_for_port(port, 120, proc)
    return proc
