"""Start-up without a registry: the API starts, /ready and predictions answer 503 with the
reason, and it begins serving when a registry with a champion appears, with no restart. When
the registry goes away again, the API keeps serving."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from lifecycle.settings import Settings
from tests.fixtures.servers import free_port, stop_process, wait_for_port
from tests.fixtures.serving import api_env, churn_records
from tests.fixtures.training import SMALL_SOURCE, train_small

pytestmark = pytest.mark.integration

MLFLOW = Path(sys.executable).parent / "mlflow"


def test_api_waits_for_the_registry_then_serves_without_restart(
    tmp_path, mongo_server, start_api
) -> None:
    registry_home = tmp_path / "registry"
    trained = train_small(
        Settings(MLOPS_HOME=str(registry_home), MLOPS_DATA_SOURCE=SMALL_SOURCE), trials=2
    )
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
        deadline = time.monotonic() + 30
        while "registry" not in (ready := client.get("/ready")).json().get("reason", ""):
            assert time.monotonic() < deadline, ready.text  # first attempt still running
            time.sleep(0.1)
        assert ready.status_code == 503
        refused = client.post("/predict", json=row)
        assert refused.status_code == 503 and "registry unreachable" in refused.json()["detail"]
        mlflow_format = client.post("/invocations", json={"inputs": [row]})
        assert mlflow_format.status_code == 503 and "message" in mlflow_format.json()

        server = _start_mlflow_server(registry_home, port, tmp_path)
        try:
            deadline = time.monotonic() + 90
            while client.get("/ready").status_code != 200:
                assert time.monotonic() < deadline, f"never became ready:\n{api.logs()}"
                time.sleep(0.25)
            served = client.post("/predict", json=row)
            assert served.status_code == 200
            assert served.json()["model_version"] == trained.version
        finally:
            stop_process(server)

        time.sleep(3.5)  # several polls against a registry that is gone
        assert client.get("/ready").status_code == 200
        again = client.post("/predict", json=row)
        assert again.status_code == 200 and again.json()["model_version"] == trained.version


def _start_mlflow_server(home: Path, port: int, tmp_path: Path) -> subprocess.Popen:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_"))},
        "PATH": f"{MLFLOW.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    with open(tmp_path / "mlflow-server.log", "wb") as log:
        proc = subprocess.Popen(
            [
                str(MLFLOW),
                "server",
                "--backend-store-uri",
                f"sqlite:///{home / 'mlflow.db'}",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wait_for_port(port, 120, proc)
    return proc
