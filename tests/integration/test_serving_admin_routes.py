"""The API's other routes in this process (`create_app(settings)` behind a TestClient, lifespan
running): /feedback, the API key, /model, /ready, /health, /metrics, a missing model's 503, and
the prediction log document each answered row leaves in MongoDB (the session's MongoDB-wire
server, through the real journal and shipper process)."""

from __future__ import annotations

import uuid

import pytest

from lifecycle.core.waiting import wait_until
from tests.fixtures.servers import own_mongo
from tests.fixtures.serving import (
    API_KEY,
    MAX_BATCH,
    churn_records,
    in_process_settings,
    metric_value,
    mongo_collection,
    serve_in_process,
)

pytestmark = pytest.mark.integration

ADMIN = {"X-API-Key": API_KEY}
BEARER = {"Authorization": f"Bearer {API_KEY}"}
# The writer thread journals every 0.1 s and the shipper process (at nice 10) inserts what it
# sealed right after: well under a second alone, seconds on a 2-core machine busy with other tests.
LOG_BOUND = 30.0


@pytest.fixture
def api(api_in_process):
    return api_in_process


def _mongo(api, collection: str = "predictions"):
    settings = api.app.state.settings
    return mongo_collection(settings.mongo_uri, settings.mongo_db, collection)


def _predict_ids(api, rows: int, **headers: str) -> list[str]:
    response = api.post("/predict", json=churn_records(rows, seed=8), headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["prediction_ids"]


def test_feedback_is_stored_idempotent_and_unknown_ids_404(api) -> None:
    ids = _predict_ids(api, 3)
    # straight after the prediction: the id may still be queued, and is accepted anyway
    r = api.post("/feedback", json=[{"prediction_id": i, "actual": 1} for i in ids], headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json() == {"received": 3, "stored": 3}
    feedback = _mongo(api, "feedback")
    first = {d["_id"]: d for d in feedback.find({"_id": {"$in": ids}})}
    assert {d["actual"] for d in first.values()} == {1}
    again = api.post("/feedback", json={"prediction_id": ids[0], "actual": 1}, headers=ADMIN)
    assert again.status_code == 200 and again.json()["stored"] == 0
    assert feedback.find_one({"_id": ids[0]}) == first[ids[0]]  # same label, same ts
    as_text = api.post("/feedback", json={"prediction_id": ids[1], "actual": "0"}, headers=ADMIN)
    assert as_text.status_code == 200 and feedback.find_one({"_id": ids[1]})["actual"] == 0
    unknown = api.post(
        "/feedback",
        json=[{"prediction_id": "no-such-id", "actual": 0}, {"prediction_id": ids[2], "actual": 0}],
        headers=ADMIN,
    )
    assert unknown.status_code == 404 and "no-such-id" in unknown.json()["detail"]
    assert unknown.json()["field"] == "prediction_id"
    assert feedback.find_one({"_id": ids[2]})["actual"] == 1  # nothing of a refused batch stored


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prediction_id": "an-id", "actual": 7}, "actual"),  # not a class of the model
        ({"prediction_id": "an-id", "actual": True}, "actual"),
        ({"prediction_id": "an-id", "actual": None}, "actual"),
        ({"actual": 1}, "prediction_id"),
        ({"prediction_id": "", "actual": 1}, "prediction_id"),
        ({"prediction_id": 5, "actual": 1}, "prediction_id"),
        ([], "body"),
        ([{"prediction_id": "an-id", "actual": 1}] * (MAX_BATCH + 1), "body"),
        ("a string", "body"),
    ],
    ids=[
        "wrong-class",
        "bool",
        "null",
        "missing-id",
        "empty-id",
        "id-not-text",
        "empty-list",
        "over-max-batch",
        "not-an-object",
    ],
)
def test_feedback_bad_input_gets_422_naming_the_field(api, body, field) -> None:
    response = api.post("/feedback", json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.json()["field"].startswith(field)
    assert field in response.json()["detail"]


def test_feedback_non_json_gets_422(api) -> None:
    response = api.post(
        "/feedback", content=b"{not json", headers={**ADMIN, "content-type": "application/json"}
    )
    assert response.status_code == 422 and response.json()["field"] == "body", response.text


def test_admin_routes_need_the_key(api) -> None:
    refused = api.post("/reload")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert refused.json()["field"] == "X-API-Key"
    assert api.post("/reload", headers={"X-API-Key": "wrong"}).status_code == 401
    assert api.post("/reload", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert api.post("/reload", headers={"Authorization": API_KEY}).status_code == 401  # no scheme
    reloaded = api.post("/reload", headers=ADMIN)
    assert reloaded.status_code == 200
    assert reloaded.json() == {
        "result": "unchanged",
        "model_version": api.get("/model").json()["model_version"],
        "reason": None,
    }
    assert api.post("/reload", headers=BEARER).status_code == 200
    assert api.post("/feedback", json={"prediction_id": "x", "actual": 1}).status_code == 401
    # predictions stay open unless MLOPS_PROTECT_PREDICT=true
    assert api.post("/predict", json=churn_records(1)[0]).status_code == 200


@pytest.fixture(scope="module")
def protected_api(trained_registry, tmp_path_factory):
    work = tmp_path_factory.mktemp("protected")
    with (
        own_mongo(work / "mongo") as mongo,
        serve_in_process(
            in_process_settings(
                work / "mlops",
                trained_registry.tracking_uri,
                mongo.uri,
                "lifecycle",
                MLOPS_PROTECT_PREDICT=True,
            )
        ) as client,
    ):
        # Warm the log up: the shipper's first insert opens its MongoDB connection (~1 s).
        warm = client.post("/predict", json=churn_records(1)[0], headers=ADMIN)
        assert warm.status_code == 200, warm.text
        _wait_for_the_log(client)
        yield client


def _wait_for_the_log(api) -> None:
    """Until nothing is on its way (memory or journal): MongoDB holds every logged row."""
    logger = api.app.state.logger
    wait_until(
        lambda: logger.queued, "the prediction log to drain", LOG_BOUND, done=lambda q: q == 0
    )


def test_protected_predictions_need_the_key_and_unauthorised_are_not_logged(
    protected_api,
) -> None:
    api, row = protected_api, churn_records(1)[0]
    # nx-27017 shares collections between database names: count this test's own documents.
    rid = {"X-Request-Id": f"auth-{uuid.uuid4().hex}"}
    for path, body in (("/predict", row), ("/invocations", {"dataframe_records": [row]})):
        refused = api.post(path, json=body, headers=rid)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    kserve = api.post("/v1/models/lifecycle-model:predict", json={"instances": [row]})
    assert kserve.status_code == 401
    assert api.post("/predict", json=row, headers={**ADMIN, **rid}).status_code == 200
    ok_bearer = api.post("/invocations", json={"inputs": [row]}, headers={**BEARER, **rid})
    assert ok_bearer.status_code == 200
    _wait_for_the_log(api)
    assert _mongo(api).count_documents({"request_id": rid["X-Request-Id"]}) == 2


def test_model_ready_health_and_metrics(api) -> None:
    info = api.get("/model").json()
    assert info["alias"] == "champion" and info["trained_at"] and "accuracy" in info["metrics"]
    assert info["model_name"] == "lifecycle-model" and info["checked_at"]
    assert info["task"] == "binary" and "customer_age" in info["features"]
    ready = api.get("/ready").json()
    assert ready == {
        "ready": True,
        "model_name": "lifecycle-model",
        "model_version": info["model_version"],
    }
    assert api.get("/health").json() == {"status": "ok"}
    assert api.post("/predict", json=churn_records(1)[0]).status_code == 200
    assert api.post("/predict", json=[]).status_code == 422
    text = api.get("/metrics").text
    assert metric_value(text, "mlops_requests_total", endpoint="/predict", status="200") >= 1
    assert metric_value(text, "mlops_requests_total", endpoint="/predict", status="422") >= 1
    assert metric_value(text, "mlops_requests_total", endpoint="/model", status="200") >= 1
    assert metric_value(text, "mlops_model_info", model_version=info["model_version"]) == 1
    assert metric_value(text, "mlops_predictions_total") >= 1
    assert metric_value(text, "mlops_model_reloads_total", result="success") == 1
    assert "mlops_request_latency_seconds_bucket" in text
    assert "mlops_prediction_log_queue" in text and "mlops_prediction_log_spooled" in text


def test_prediction_log_document_matches_the_answer(api) -> None:
    record = churn_records(1, seed=21)[0]
    r = api.post("/predict", json=record, headers={"X-Request-Id": "req-42"})
    pid = r.json()["prediction_ids"][0]
    predictions = _mongo(api)
    doc = wait_until(
        lambda: predictions.find_one({"_id": pid}), f"prediction {pid} in MongoDB", LOG_BOUND
    )
    assert set(doc) == {
        "_id",
        "ts",
        "model_name",
        "model_version",
        "features",
        "prediction",
        "probabilities",
        "latency_ms",
        "request_id",
        "endpoint",
        "sample_key",
    }
    assert 0.0 <= doc["sample_key"] < 1.0  # what a report's sampled read filters on
    assert doc["features"] == record and doc["request_id"] == "req-42"
    assert doc["endpoint"] == "/predict" and doc["model_version"] == r.json()["model_version"]
    assert doc["prediction"] == r.json()["predictions"][0]
    assert doc["probabilities"] == pytest.approx(r.json()["probabilities"][0], rel=1e-6)
    assert doc["ts"].year >= 2024 and doc["latency_ms"] > 0


@pytest.fixture(scope="module")
def unready_api(trained_registry, tmp_path_factory):
    """An app whose alias points nowhere, and whose MongoDB is not there (port 9)."""
    settings = in_process_settings(
        tmp_path_factory.mktemp("unready") / "mlops",
        trained_registry.tracking_uri,
        "mongodb://127.0.0.1:9",
        "unready",
        MLOPS_MODEL_ALIAS="nowhere",
        MLOPS_LOG_PREDICTIONS=False,
    )
    with serve_in_process(settings, ready=False) as client:
        yield client


def test_missing_model_answers_503_with_the_reason(unready_api) -> None:
    api, reason = unready_api, "no model version has alias lifecycle-model@nowhere yet"
    # The first check runs in a worker thread: a quick registry read, bounded for a busy box.
    wait_until(
        lambda: api.get("/ready").json(),
        "the first alias check",
        30,
        done=lambda b: reason in b["reason"],
    )
    assert api.get("/ready").status_code == 503
    predict = api.post("/predict", json=churn_records(1)[0])
    assert predict.status_code == 503 and reason in predict.json()["detail"]
    invocations = api.post("/invocations", json={"inputs": churn_records(1)})
    assert invocations.status_code == 503
    assert invocations.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert reason in invocations.json()["message"]
    assert api.get("/model").status_code == 503
    assert api.get("/health").status_code == 200


def test_feedback_while_mongo_is_down_gets_503_to_retry(unready_api) -> None:
    # The store gives up after its 1 s server-selection timeout: no label is taken and lost.
    r = unready_api.post("/feedback", json={"prediction_id": "x", "actual": 1}, headers=ADMIN)
    assert r.status_code == 503 and "retry" in r.json()["detail"]
