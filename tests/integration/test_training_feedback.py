"""Training on production labels and a gate that sees production, on the real MongoDB-wire server
(nx-27017), the train-model flow under Prefect's test harness and a sqlite MLflow registry."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from lifecycle.core.settings import Settings
from lifecycle.core.times import utcnow
from lifecycle.data import synthetic
from lifecycle.data.feedback import with_production
from lifecycle.data.sources import load_dataset
from lifecycle.stores.documents import prediction_document
from lifecycle.stores.prediction_store import PredictionStore
from tests.fixtures.prefect import latest_artifact_markdown

BASE = "synthetic:churn?rows=600&seed=7"  # old regime (concept 0), kept small: the point is
# that the production rows (concept 1) teach the candidate what the old champion cannot know
IN_WINDOW = 2000  # enough held-out rows (600) for the gate to see the candidate's skill
OUTSIDE = 150


def _log_production(store: PredictionStore, rows: int, age: timedelta, labelled: bool) -> None:
    """`rows` concept-drifted predictions logged `age` ago, with their labels if `labelled`."""
    frame = synthetic.generate_churn(rows, seed=int(age.total_seconds()) % 997, concept=1.0)
    labels = frame.pop(synthetic.TARGET).tolist()
    now = utcnow()
    documents, truth = [], {}
    for i, record in enumerate(frame.to_dict("records")):
        pid = str(uuid.uuid4())
        # Oldest first, one second apart: the most recent rows are the last ones.
        ts = now - age + timedelta(seconds=i)
        documents.append(prediction_document(pid, ts, "lifecycle-model", "1", record, 0, None))
        truth[pid] = labels[i]
    store.insert_predictions(documents)
    if labelled:
        store.upsert_feedback(truth)


@pytest.fixture
def production(mongo_db: str, mongo_server) -> PredictionStore:
    store = PredictionStore(mongo_server.uri, mongo_db, timeout_ms=10_000)
    _log_production(store, IN_WINDOW, timedelta(days=2), labelled=True)
    _log_production(store, 100, timedelta(days=1), labelled=False)  # no label: not a row
    _log_production(store, OUTSIDE, timedelta(days=20), labelled=True)  # outside 14d
    yield store
    store.close()


def test_feedback_window_uses_exactly_the_labelled_rows_and_the_gate_decides_on_them(
    prefect_harness: None, mlops_home: Path, production: PredictionStore, monkeypatch
) -> None:
    from flows.train import run_train_flow
    from flows.train_summary import report_markdown

    monkeypatch.setenv("MLOPS_MIN_METRIC", "0.5")  # the old regime's floor is not the point here
    settings = Settings(MLOPS_DATA_SOURCE=BASE, MLOPS_SEARCH_SPACE="fast")
    v1 = run_train_flow(settings, trials=2, seed=7)
    assert v1.promoted and v1.production is None

    with_feedback = Settings(
        MLOPS_DATA_SOURCE=BASE,
        MLOPS_SEARCH_SPACE="fast",
        MLOPS_FEEDBACK_WINDOW="14d",
        MLOPS_FEEDBACK_MIN_ROWS="100",
    )
    v2 = run_train_flow(with_feedback, trials=2, seed=8)
    rows = v2.production
    assert rows is not None and rows.used
    assert rows.labelled == IN_WINDOW  # neither the unlabelled nor the 20-day-old rows
    assert rows.appended + len(rows.holdout) == IN_WINDOW
    markdown = report_markdown(v2)
    assert f"{IN_WINDOW} labelled rows; {rows.appended} appended" in markdown
    assert _artifact_text().count(f"{IN_WINDOW} labelled rows") == 1

    # The gate decided on the held-out production rows, where v1 (old regime) loses.
    assert v2.promoted, v2.reason
    assert "most recent labelled production rows, held out from training" in v2.reason
    assert f"champion v{v1.version}" in v2.reason


def test_too_few_labelled_rows_train_on_the_base_source_only(
    production: PredictionStore, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(MLOPS_FEEDBACK_WINDOW="14d", MLOPS_FEEDBACK_MIN_ROWS=str(IN_WINDOW + 1))
    base = load_dataset(BASE)
    with caplog.at_level("WARNING", logger="lifecycle.data.feedback"):
        dataset, rows = with_production(base, settings, production)
    assert dataset is base and rows is not None and not rows.used
    assert rows.labelled == IN_WINDOW
    assert [r.message for r in caplog.records] == [
        f"feedback window 14d: {IN_WINDOW} labelled rows, fewer than MLOPS_FEEDBACK_MIN_ROWS="
        f"{IN_WINDOW + 1}; trained on {BASE} only"
    ]


def test_feedback_source_reads_the_labelled_rows_of_its_window(
    production: PredictionStore, mongo_db: str
) -> None:
    dataset = load_dataset("feedback:14d", target="churn")
    assert len(dataset.frame) == IN_WINDOW and dataset.task == "binary"
    assert set(dataset.features.columns) == set(synthetic.UNDRIFTED_COLUMNS) | set(
        synthetic.DRIFTED_COLUMNS
    )
    trained, rows = with_production(dataset, Settings())
    assert rows is not None and len(trained.frame) + len(rows.holdout) == IN_WINDOW


def _artifact_text() -> str:
    return latest_artifact_markdown("train-model-summary")
