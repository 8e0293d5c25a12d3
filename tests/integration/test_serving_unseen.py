"""A category the model never saw (MLOPS_UNSEEN_CATEGORY), in this process on the session's
trained model: `missing` scores the row with that feature missing, says so in the answer and
the log, and counts it; `reject` (the default) answers 422 naming the field, and counts it too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lifecycle.core.waiting import wait_until
from tests.fixtures.servers import own_mongo
from tests.fixtures.serving import (
    churn_records,
    in_process_settings,
    metric_value,
    mongo_collection,
    serve_in_process,
)

pytestmark = pytest.mark.integration

UNSEEN = "mlops_unseen_category_total"


@pytest.fixture(scope="module")
def api_missing(trained_registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The app with MLOPS_UNSEEN_CATEGORY=missing, logging to a MongoDB-wire server of its own."""
    work = tmp_path_factory.mktemp("api-unseen")
    with own_mongo(work / "mongo") as mongo:
        settings = in_process_settings(
            work / "mlops",
            trained_registry.tracking_uri,
            mongo.uri,
            "lifecycle",
            MLOPS_UNSEEN_CATEGORY="missing",
        )
        with serve_in_process(settings) as client:
            client.settings = settings
            yield client


def test_missing_scores_an_unseen_category_as_missing_and_says_so(api_missing) -> None:
    rows = churn_records(300, seed=31)  # over THREAD_ROWS: the worker-thread path
    rows[7] = {**rows[7], "gender": "X"}
    rows[9] = {**rows[9], "gender": "m", "card_category": "Titanium"}
    answer = api_missing.post("/predict", json=rows)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["predictions"]) == 300  # one unseen value loses no row
    assert body["unseen"] == [
        {"row": 7, "field": "gender", "value": "X"},
        {"row": 9, "field": "gender", "value": "m"},
        {"row": 9, "field": "card_category", "value": "Titanium"},
    ]
    # Scored exactly as the same row with those features missing (XGBoost's missing branch).
    as_missing = [{**rows[7], "gender": None}, {**rows[9], "gender": None, "card_category": None}]
    expected = api_missing.post("/predict", json=as_missing).json()
    assert "unseen" not in expected
    assert [body["probabilities"][i] for i in (7, 9)] == expected["probabilities"]

    metrics = api_missing.get("/metrics").text
    assert metric_value(metrics, UNSEEN, feature="gender") == 2
    assert metric_value(metrics, UNSEEN, feature="card_category") == 1

    settings = api_missing.settings
    collection = mongo_collection(settings.mongo_uri, settings.mongo_db)
    ids = body["prediction_ids"]
    # Shipped by the shipper process: ~1 s alone, up to ~30 s on a loaded 2-core machine.
    wait_until(
        lambda: collection.count_documents({"_id": {"$in": ids}}),
        "the 300 documents to be shipped",
        60,
        0.2,
        done=lambda n: n == len(ids),
    )
    documents = {d["_id"]: d for d in collection.find({"_id": {"$in": ids}})}
    assert documents[ids[7]]["unseen"] == {"gender": "X"}
    assert documents[ids[7]]["features"]["gender"] == "X"  # the value as sent
    assert documents[ids[9]]["unseen"] == {"gender": "m", "card_category": "Titanium"}
    assert sum("unseen" in d for d in documents.values()) == 2


def test_reject_answers_422_naming_the_field_and_counts_it(api_in_process) -> None:
    rows = churn_records(3, seed=32)
    rows[1] = {**rows[1], "gender": "X"}
    before = metric_value(api_in_process.get("/metrics").text, UNSEEN, feature="gender")
    answer = api_in_process.post("/predict", json=rows)
    assert answer.status_code == 422
    assert answer.json()["field"] == "gender"
    assert answer.json()["detail"].startswith("gender: unknown category 'X'; expected one of")
    assert "(row 1)" in answer.json()["detail"]
    after = metric_value(api_in_process.get("/metrics").text, UNSEEN, feature="gender")
    assert after == before + 1
