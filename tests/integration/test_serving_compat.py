"""Drop-in compatibility: for the same registered model and rows, our /invocations answers as
`mlflow models serve` does, in the four JSON formats and CSV."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest

from ops.local_servers import wait_http
from tests.fixtures.servers import free_port, stop_process
from tests.fixtures.serving import churn_records

pytestmark = pytest.mark.integration

MLFLOW = Path(sys.executable).parent / "mlflow"


@pytest.fixture(scope="module")
def mlflow_serve(trained_registry, tmp_path_factory):
    """`mlflow models serve --env-manager local` on the same registered version."""
    port = free_port()
    log = tmp_path_factory.mktemp("mlflow-serve") / "serve.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")},
        "MLFLOW_TRACKING_URI": trained_registry.tracking_uri,
        # mlflow runs `uvicorn` by name: the venv's bin must come first on PATH
        "PATH": f"{MLFLOW.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(MLFLOW),
                "models",
                "serve",
                "--env-manager",
                "local",
                "-m",
                trained_registry.model_uri,
                "-p",
                str(port),
                "-h",
                "127.0.0.1",
                "-w",
                "1",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        # `mlflow models serve` imports mlflow, then loads the model before /ping answers: tens
        # of seconds alone, a few minutes on a 2-core machine busy with other tests.
        wait_http(f"{url}/ping", 300, proc)
        yield url
    finally:
        stop_process(proc)


def _payloads(rows: list[dict]) -> list[tuple[str, dict]]:
    names = list(rows[0])
    split = {"columns": names, "data": [[r[c] for c in names] for r in rows]}
    csv_text = pd.DataFrame(rows).to_csv(index=False)
    columns = {c: [r[c] for r in rows] for c in names}
    return [
        ("dataframe_split", {"json": {"dataframe_split": split}}),
        ("dataframe_records", {"json": {"dataframe_records": rows}}),
        ("instances", {"json": {"instances": rows}}),
        ("inputs", {"json": {"inputs": rows}}),
        ("inputs-columns", {"json": {"inputs": columns}}),
        ("csv", {"content": csv_text, "headers": {"content-type": "text/csv"}}),
    ]


def test_invocations_match_mlflow_models_serve(shared_api, mlflow_serve) -> None:
    rows = churn_records(40, seed=77)
    rows[3]["credit_limit"] = None  # a missing value the model takes
    with httpx.Client(timeout=60) as client:
        for name, kwargs in _payloads(rows):
            theirs = client.post(f"{mlflow_serve}/invocations", **kwargs)
            ours = client.post(f"{shared_api.url}/invocations", **kwargs)
            assert theirs.status_code == 200, (name, theirs.text[:500])
            assert ours.status_code == 200, (name, ours.text[:500])
            assert ours.json() == theirs.json(), name
            assert set(ours.json()) == {"predictions"}
            assert len(ours.json()["predictions"]) == len(rows)


def test_invocations_csv_with_index_column_matches(shared_api, mlflow_serve) -> None:
    frame = pd.DataFrame(churn_records(5, seed=78))
    buffer = io.StringIO()
    frame.to_csv(buffer)  # pandas' default: the index as an unnamed first column
    kwargs = {"content": buffer.getvalue(), "headers": {"content-type": "text/csv"}}
    theirs = httpx.post(f"{mlflow_serve}/invocations", timeout=60, **kwargs)
    ours = httpx.post(f"{shared_api.url}/invocations", timeout=60, **kwargs)
    assert theirs.status_code == ours.status_code == 200, theirs.text[:300]
    assert ours.json() == theirs.json()
