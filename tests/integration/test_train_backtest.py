"""The candidate's backtest before live traffic, on real servers: the train-model flow under the
Prefect test server, a sqlite MLflow registry, and the test's own nx-27017 holding predictions
that the champion served (with their probabilities, as the API logs them), most of them labelled.

A candidate retrained on those labels goes to the shadow alias; its backtest on the feedback
window leaves out exactly the rows it was trained on, and its figures are in the TrainResult, the
gate's registry tag, the run's `gate_reason` and the `train-model` artifact. A backtest that
cannot run (the store unreachable, an empty window) never fails the training run.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from flows import train_backtest
from lifecycle.core.settings import Settings
from lifecycle.core.times import utcnow
from lifecycle.data import synthetic
from lifecycle.stores import registry, registry_loading
from lifecycle.stores.prediction_store import PredictionStore
from reporting.backtest import BacktestError
from tests.fixtures.estimates import log_window, plain
from tests.fixtures.prefect import latest_artifact_markdown
from tests.fixtures.servers import free_port

pytestmark = pytest.mark.integration

BASE = "synthetic:churn?rows=600&seed=7"  # the champion's (old) regime, concept 0
LOGGED = 2500  # predictions the champion served in the last 3 h, concept 1
LABELLED_SHARE = 0.8


def _train(**settings: str):
    from flows.train import run_train_flow

    seed = int(settings.pop("seed", "7"))
    return run_train_flow(
        Settings(MLOPS_DATA_SOURCE=BASE, MLOPS_SEARCH_SPACE="fast", **settings), trials=2, seed=seed
    )


def _log_served(store: PredictionStore, version: str, rows: int = LOGGED) -> dict[str, object]:
    """`rows` predictions answered by `version`; returns the labels sent back for some."""
    _, predictor = registry_loading.load_predictor(version, Settings())
    frame = synthetic.generate_churn(rows, seed=11, concept=1.0)
    ids, _, truth = log_window(store, frame, predictor, version, utcnow() - timedelta(minutes=1))
    chosen = np.random.default_rng(3).random(rows) < LABELLED_SHARE
    labels = {pid: plain(t) for pid, t, keep in zip(ids, truth, chosen, strict=True) if keep}
    store.upsert_feedback(labels)
    return labels


def test_candidate_is_backtested_before_shadow_without_its_training_rows(
    prefect_harness: None, mlops_home: Path, mongo_db: str, mongo_server, monkeypatch
) -> None:
    monkeypatch.setenv("MLOPS_MIN_METRIC", "0.5")  # the old regime's floor is not the point here
    v1 = _train()
    assert v1.promoted and v1.backtest is None  # no champion to set it against
    store = PredictionStore(mongo_server.uri, mongo_db, timeout_ms=10_000)
    labels = _log_served(store, v1.version)
    store.close()

    v2 = _train(
        seed="8",
        MLOPS_FEEDBACK_WINDOW="14d",
        MLOPS_FEEDBACK_MIN_ROWS="100",
        MLOPS_SHADOW_ALIAS="challenger",
        MLOPS_AUTO_PROMOTE="true",
    )
    print("\n" + v2.reason)
    assert not v2.promoted and v2.alias == "challenger"
    assert v2.production is not None and v2.production.labelled == len(labels)
    evidence = v2.backtest
    assert evidence is not None and not evidence.skipped and evidence.window == "14d"
    doc = evidence.document

    # The rows v2 was trained on, as its run recorded them: left out, and only those.
    settings = Settings()
    run_id = registry.train_run_id(registry.get_version(v2.version, settings))
    trained_on = registry_loading.read_run_json(run_id, registry.PRODUCTION_IDS_PATH, settings)
    trained_on = set(trained_on["prediction_ids"])
    assert len(trained_on) == v2.production.appended > 0 and trained_on <= set(labels)
    assert (doc["version"], doc["against"], doc["window"]) == (v2.version, None, "14d")
    assert doc["rows"] == LOGGED and doc["excluded_training_rows"] == len(trained_on)
    assert doc["scored"] == LOGGED - len(trained_on)
    # The labelled evidence is the rows held out from v2's training, none it learnt from.
    paired = doc["paired"]
    assert paired["pairs"] == len(labels) - len(trained_on) == len(v2.production.holdout)
    assert paired["wins"] + paired["losses"] + paired["ties"] == paired["pairs"]
    assert paired["champion"] == v1.version and paired["challenger"] == v2.version
    assert {v: "value" in e for v, e in doc["estimated"].items()} == {
        v1.version: True,
        v2.version: True,
    }

    line = evidence.line
    assert line.startswith("backtest on the last 14d: ")
    assert f"{doc['scored']:,} of {LOGGED:,} rows scored, {len(trained_on):,} excluded" in line
    assert f"wins {paired['wins']}, losses {paired['losses']}, ties {paired['ties']}" in line
    assert f"disagreement {doc['disagreement']:.4f}" in line
    assert v2.reason.endswith(f"; {line}")
    assert registry.get_version(v2.version, settings).tags[registry.TAG_GATE] == v2.reason
    tags = MlflowClient(settings.mlflow_tracking_uri).get_run(v2.run_id).data.tags
    assert tags["gate_reason"] == v2.reason
    markdown = _artifact_text()
    assert "## Backtest before live traffic" in markdown
    assert f"{len(trained_on):,} rows left out (training rows" in markdown
    assert f"paired on {paired['pairs']:,} labelled rows" in markdown


def _replay_fails(**_: object) -> None:
    raise BacktestError("replay exploded")


@pytest.mark.parametrize("store_state", ["unreachable", "empty", "replay fails"])
def test_train_completes_with_backtest_skipped_when_it_cannot_run(
    store_state: str,
    prefect_harness: None,
    mlops_home: Path,
    mongo_db: str,
    mongo_server,
    monkeypatch,
) -> None:
    if store_state == "unreachable":
        monkeypatch.setenv("MONGO_URI", f"mongodb://127.0.0.1:{free_port()}")  # nobody listens
    monkeypatch.setenv("MLOPS_MIN_METRIC", "0.5")
    v1 = _train()
    assert v1.promoted
    if store_state == "replay fails":
        store = PredictionStore(mongo_server.uri, mongo_db, timeout_ms=10_000)
        _log_served(store, v1.version, rows=20)
        store.close()
        monkeypatch.setattr(train_backtest, "backtest", _replay_fails)
    v2 = _train(seed="8", MLOPS_MIN_METRIC="0.9999")  # misses the bound: `challenger`
    assert not v2.promoted and v2.alias == "challenger"
    evidence = v2.backtest
    assert evidence is not None and evidence.skipped and evidence.window == "3h"
    expected = {
        "unreachable": "backtest skipped: prediction store unreachable (",
        "empty": "backtest skipped: no predictions logged in the last 3h",
        "replay fails": "backtest skipped: BacktestError: replay exploded",
    }[store_state]
    assert evidence.line.startswith(expected)
    assert "\n" not in evidence.line and v2.reason.endswith(f"; {evidence.line}")
    assert registry.get_version(v2.version).tags[registry.TAG_GATE] == v2.reason
    assert expected in _artifact_text()


def _artifact_text() -> str:
    return latest_artifact_markdown("train-model-summary")
