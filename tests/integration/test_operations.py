"""Operations commands against real servers: batch scoring, status, and the whole demo."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from lifecycle.data import synthetic
from tests.fixtures.cli import run_mlops
from tests.fixtures.prefect import database_template

pytestmark = pytest.mark.integration
MLOPS = str(Path(sys.executable).parent / "mlops")


def _mlops(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([MLOPS, *args], capture_output=True, text=True, timeout=timeout, env=env)


def _batch(source: Path, output: Path, env: dict[str, str | None], *extra: str, process=False):
    """`mlops predict-batch`: in a child process when `process`, else in this one (the bad-input
    cases: what is under test is the message, not a process start)."""
    args = ("predict-batch", "--input", str(source), "--output", str(output), *extra)
    if process:
        child_env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
        return _mlops(*args, env=child_env)
    return run_mlops(*args, env=env)


@pytest.fixture
def registry_env(trained_registry, mongo_server) -> dict[str, str | None]:
    """The session's trained registry and MongoDB, and no other MLOPS_/MLFLOW_/MONGO setting
    (None: unset)."""
    env: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith(("MLOPS_", "MLFLOW_", "MONGO"))
    }
    env.update(MLOPS_HOME=str(trained_registry.home), MONGO_URI=mongo_server.uri)
    return env


def test_predict_batch_scores_200k_rows_like_the_api(
    tmp_path: Path, registry_env: dict[str, str], shared_api
) -> None:
    frame = synthetic.churn_features(200_000, seed=21)
    source = tmp_path / "customers.csv"
    frame.to_csv(source, index=False)
    output = tmp_path / "scores.parquet"

    done = _batch(source, output, registry_env, process=True)
    assert done.returncode == 0, done.stderr
    assert "scored 200000 rows" in done.stdout
    scores = pd.read_parquet(output)
    assert len(scores) == 200_000
    assert {"prediction", "proba_0", "proba_1"} <= set(scores.columns)

    sample = frame.sample(300, random_state=3)
    api = httpx.post(f"{shared_api.url}/predict", json=sample.to_dict("records"), timeout=30)
    assert api.status_code == 200, api.text
    body = api.json()
    assert body["predictions"] == scores.loc[sample.index, "prediction"].tolist()
    np.testing.assert_allclose(
        [p["1"] for p in body["probabilities"]], scores.loc[sample.index, "proba_1"], rtol=1e-6
    )


def test_predict_batch_missing_column_is_one_line(
    tmp_path: Path, registry_env: dict[str, str]
) -> None:
    source = tmp_path / "partial.parquet"
    synthetic.churn_features(50, seed=1).drop(columns=["card_category", "gender"]).to_parquet(
        source
    )
    done = _batch(source, tmp_path / "o.csv", registry_env)
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line == (
        f"error: input file '{source}': missing column(s) gender, card_category "
        "(the model expects 16 features)"
    )
    assert not (tmp_path / "o.csv").exists()

    unknown = _batch(source, tmp_path / "o.csv", registry_env, "--version", "42")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "error: model 'lifecycle-model' has no version '42'"


def test_predict_batch_bad_category_names_column_and_row(
    tmp_path: Path, registry_env: dict[str, str]
) -> None:
    frame = synthetic.churn_features(30, seed=2)
    frame.loc[17, "card_category"] = "Diamond"
    source = tmp_path / "bad.csv"
    frame.to_csv(source, index=False)
    done = _batch(source, tmp_path / "o.csv", registry_env)
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: column card_category (row 18): unknown category 'Diamond'")


def test_status_reports_champion_and_survives_mongo_down(registry_env: dict[str, str]) -> None:
    up = run_mlops("status", env=registry_env)
    assert up.returncode == 0, up.stderr
    assert "champion    v1," in up.stdout and "test accuracy=" in up.stdout
    assert "last train" in up.stdout and "predictions waiting for MongoDB" in up.stdout

    down = run_mlops("status", env={**registry_env, "MONGO_URI": "mongodb://127.0.0.1:9"})
    assert down.returncode == 0, down.stderr
    assert "champion    v1," in down.stdout
    assert "unavailable MongoDB mongodb://127.0.0.1:9" in down.stdout


def test_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_", "MONGO"))}
    env.pop("PREFECT_API_URL", None)
    env["MLOPS_HOME"] = str(tmp_path / "mlops")
    # The demo's Prefect server starts on a database migrated once per session (--keep leaves
    # it in place): the migrations cost a fresh start ~5 s of CPU, the same in every run.
    prefect_home = tmp_path / "mlops" / "demo" / "prefect"
    prefect_home.mkdir(parents=True)
    shutil.copyfile(database_template(), prefect_home / "prefect.db")
    done = _mlops("demo", "--trials", "5", "--keep", env=env, timeout=900)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "versions seen by clients, in order: v1 -> v2" in out
    # The version that replaced v1 has skill on the drifted traffic, not accuracy alone.
    found = re.findall(
        r"^v(\d+) on 2,000 drifted rows .*, F1 ([0-9.]+), ROC AUC ([0-9.]+)", out, re.M
    )
    skill = {version: (float(f1), float(auc)) for version, f1, auc in found}
    assert set(skill) == {"1", "2"}, out[-3000:]
    assert skill["2"][0] > max(0.0, skill["1"][0]) and skill["2"][1] > skill["1"][1], skill
    assert "sequential test promote" in out
    assert "live accuracy" in out and "drift share" in out
    assert "predictions," in out and "labels" in out
    index = tmp_path / "mlops" / "demo" / "reports" / "index.html"
    assert index.is_file()
    assert f"reports index   {index}" in out
