"""The API under real uvicorn, on the session's trained registry and the nx-27017 server:
bad input, feedback, auth, /model, /metrics and the OpenAPI document."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from tests.fixtures.serving import (
    API_KEY,
    api_env,
    churn_records,
    metric_value,
    mongo_collection,
)

pytestmark = pytest.mark.integration

ADMIN = {"X-API-Key": API_KEY}


@pytest.fixture(scope="module")
def api(shared_api) -> httpx.Client:
    with httpx.Client(base_url=shared_api.url, timeout=30) as client:
        yield client


def _record(**changes) -> dict:
    record = churn_records(1, seed=21)[0]
    for key, value in changes.items():
        if value is ...:
            record.pop(key)
        else:
            record[key] = value
    return record


def test_predict_one_record_and_a_batch(api) -> None:
    one = api.post("/predict", json=_record())
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["model_name"] == "lifecycle-model" and body["model_version"]
    assert len(body["predictions"]) == len(body["prediction_ids"]) == 1
    assert set(body["probabilities"][0]) == {"0", "1"}
    assert abs(sum(body["probabilities"][0].values()) - 1) < 1e-6
    batch = api.post("/predict", json=churn_records(25, seed=3))
    assert batch.status_code == 200
    assert len(set(batch.json()["prediction_ids"])) == 25


@pytest.mark.parametrize(
    ("request_kwargs", "status", "field"),
    [
        ({"json": _record(credit_limit=...)}, 422, "credit_limit"),
        ({"json": _record(customer_age="old")}, 422, "customer_age"),
        ({"json": _record(customer_age=None)}, 422, "customer_age"),
        (
            {
                "content": json.dumps(_record(customer_age=float("nan"))),
                "headers": {"content-type": "application/json"},
            },
            400,
            "body",
        ),  # NaN is not JSON
        ({"json": _record(card_category="Titanium")}, 422, "card_category"),
        ({"json": _record(shoe_size=44)}, 422, "shoe_size"),
        ({"json": []}, 422, "records"),
        ({"json": [_record()] * 10_001}, 422, "records"),
        ({"json": "a string"}, 422, "body"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "body"),
        (
            {"content": b"customer_age=3", "headers": {"content-type": "text/plain"}},
            415,
            "content-type",
        ),
        (
            {
                "content": b"x" * (16 * 1024 * 1024 + 1),
                "headers": {"content-type": "application/json"},
            },
            413,
            "body",
        ),
    ],
    ids=[
        "missing",
        "wrong-type",
        "null",
        "nan",
        "unknown-category",
        "extra-field",
        "empty",
        "over-max-batch",
        "not-a-record",
        "non-json",
        "content-type",
        "too-big",
    ],
)
def test_predict_bad_input_gets_4xx_naming_the_field(api, request_kwargs, status, field) -> None:
    response = api.post("/predict", **request_kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["field"] == field
    assert field in body["detail"]


def test_invocations_bad_input_answers_in_mlflow_format(api) -> None:
    r = api.post("/invocations", json={"dataframe_records": [_record(card_category="Titanium")]})
    assert r.status_code == 400
    assert r.json()["error_code"] == "BAD_REQUEST" and "card_category" in r.json()["message"]
    r = api.post("/invocations", json={"records": [_record()]})
    assert r.status_code == 400 and "dataframe_split" in r.json()["message"]
    r = api.post("/invocations", content=b"a", headers={"content-type": "application/xml"})
    assert r.status_code == 415


def test_kserve_v1_predict(api) -> None:
    rows = churn_records(3, seed=5)
    r = api.post("/v1/models/lifecycle-model:predict", json={"instances": rows})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 3
    assert api.post("/v1/models/other:predict", json={"instances": rows}).status_code == 404
    assert api.post("/v1/models/lifecycle-model:predict", json=rows).status_code == 422


def test_feedback_is_stored_idempotent_and_unknown_ids_404(api, shared_api, mongo_server) -> None:
    ids = api.post("/predict", json=churn_records(3, seed=8)).json()["prediction_ids"]
    # straight after the prediction: the id may still be queued, and is accepted anyway
    r = api.post("/feedback", json=[{"prediction_id": i, "actual": 1} for i in ids], headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json() == {"received": 3, "stored": 3}
    feedback = mongo_collection(mongo_server.uri, shared_api.env["MLOPS_MONGO_DB"], "feedback")
    first = {d["_id"]: d for d in feedback.find({"_id": {"$in": ids}})}
    assert {d["actual"] for d in first.values()} == {1}
    again = api.post("/feedback", json={"prediction_id": ids[0], "actual": 1}, headers=ADMIN)
    assert again.status_code == 200 and again.json()["stored"] == 0
    assert feedback.find_one({"_id": ids[0]}) == first[ids[0]]  # same label, same ts
    unknown = api.post(
        "/feedback", json={"prediction_id": "no-such-id", "actual": 0}, headers=ADMIN
    )
    assert unknown.status_code == 404 and "no-such-id" in unknown.json()["detail"]
    wrong_class = api.post("/feedback", json={"prediction_id": ids[0], "actual": 7}, headers=ADMIN)
    assert wrong_class.status_code == 422 and wrong_class.json()["field"] == "actual"
    missing = api.post("/feedback", json={"actual": 1}, headers=ADMIN)
    assert missing.status_code == 422 and "prediction_id" in missing.json()["detail"]


def test_admin_routes_need_the_key(api) -> None:
    assert api.post("/reload").status_code == 401
    assert api.post("/reload", headers={"X-API-Key": "wrong"}).status_code == 401
    assert api.post("/reload", headers=ADMIN).status_code == 200
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    assert api.post("/reload", headers=bearer).status_code == 200
    assert api.post("/feedback", json={"prediction_id": "x", "actual": 1}).status_code == 401
    # predictions stay open unless MLOPS_PROTECT_PREDICT=true
    assert api.post("/predict", json=_record()).status_code == 200


def test_protected_predictions_need_the_key_and_unauthorised_are_not_logged(
    trained_registry, mongo_server, start_api
) -> None:
    db = f"auth{uuid.uuid4().hex[:8]}"
    env = api_env(
        trained_registry.home,
        mongo_server.uri,
        db,
        MLOPS_API_KEY=API_KEY,
        MLOPS_PROTECT_PREDICT="true",
    )
    server = start_api(env)
    # nx-27017 with one --db file shares collections between database names, so this test
    # counts its own documents by request id.
    rid = {"X-Request-Id": f"auth-{uuid.uuid4().hex}"}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for path, body in (
            ("/predict", _record()),
            ("/invocations", {"dataframe_records": [_record()]}),
        ):
            assert client.post(path, json=body, headers=rid).status_code == 401
        ok = client.post("/predict", json=_record(), headers={**ADMIN, **rid})
        assert ok.status_code == 200
        ok_bearer = client.post(
            "/invocations",
            json={"inputs": [_record()]},
            headers={"Authorization": f"Bearer {API_KEY}", **rid},
        )
        assert ok_bearer.status_code == 200
    server.stop()  # flushes the prediction log
    predictions = mongo_collection(mongo_server.uri, db)
    assert predictions.count_documents({"request_id": rid["X-Request-Id"]}) == 2


def test_model_ready_metrics_and_prediction_log_shape(api, shared_api, mongo_server) -> None:
    info = api.get("/model").json()
    assert info["alias"] == "champion" and info["trained_at"] and "accuracy" in info["metrics"]
    assert api.get("/ready").json()["ready"] is True
    assert api.get("/health").status_code == 200
    r = api.post("/predict", json=_record(), headers={"X-Request-Id": "req-42"})
    pid = r.json()["prediction_ids"][0]
    predictions = mongo_collection(mongo_server.uri, shared_api.env["MLOPS_MONGO_DB"])
    deadline = time.monotonic() + 10
    doc = None
    while doc is None and time.monotonic() < deadline:
        doc = predictions.find_one({"_id": pid})
        time.sleep(0.05)
    assert doc is not None
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
    }
    assert doc["features"] == _record() and doc["request_id"] == "req-42"
    assert doc["endpoint"] == "/predict" and doc["model_version"] == info["model_version"]
    assert doc["prediction"] == r.json()["predictions"][0]
    assert doc["probabilities"] == pytest.approx(r.json()["probabilities"][0], rel=1e-6)
    assert doc["ts"].year >= 2024 and doc["latency_ms"] > 0
    text = api.get("/metrics").text
    assert metric_value(text, "mlops_requests_total", endpoint="/predict", status="200") >= 1
    assert metric_value(text, "mlops_requests_total", endpoint="/predict", status="422") >= 1
    assert metric_value(text, "mlops_model_info", model_version=info["model_version"]) == 1
    assert metric_value(text, "mlops_predictions_total") >= 1
    assert metric_value(text, "mlops_model_reloads_total", result="success") == 1
    assert "mlops_request_latency_seconds_bucket" in text
    assert "mlops_prediction_log_queue" in text and "mlops_prediction_log_spooled" in text


def test_openapi_describes_the_records_with_examples(api) -> None:
    doc = api.get("/openapi.json").json()
    record = doc["components"]["schemas"]["Record"]
    assert record["properties"]["card_category"]["anyOf"][0]["enum"]
    assert "customer_age" in record["required"]
    examples = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert examples["examples"]["one"]["value"]["customer_age"]
    assert api.get("/docs").status_code == 200
