"""The prediction routes in this process (`create_app(settings)` behind a TestClient, the
session's trained model loaded in the lifespan): answers, and every bad input's 4xx naming the
field. /predict, MLflow's /invocations and KServe v1."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.serving import MAX_BATCH, MAX_BODY_BYTES, churn_records

pytestmark = pytest.mark.integration

JSON = {"content-type": "application/json"}


def _record(**changes) -> dict:
    """One client record; a change to `...` drops the field."""
    record = churn_records(1, seed=21)[0]
    for key, value in changes.items():
        if value is ...:
            record.pop(key)
        else:
            record[key] = value
    return record


@pytest.fixture
def api(api_in_process):
    return api_in_process


def test_predict_one_record_and_a_batch(api) -> None:
    one = api.post("/predict", json=_record())
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["model_name"] == "lifecycle-model" and body["model_version"]
    assert one.headers["x-model-version"] == body["model_version"]
    assert len(body["predictions"]) == len(body["prediction_ids"]) == 1
    assert set(body["probabilities"][0]) == {"0", "1"}
    assert abs(sum(body["probabilities"][0].values()) - 1) < 1e-6
    batch = api.post("/predict", json=churn_records(25, seed=3))
    assert batch.status_code == 200
    assert len(set(batch.json()["prediction_ids"])) == 25


def test_predict_a_batch_large_enough_for_a_worker_thread_matches_row_by_row(api) -> None:
    rows = churn_records(300, seed=4)  # over THREAD_ROWS: validated and predicted off the loop
    batch = api.post("/predict", json=rows)
    assert batch.status_code == 200, batch.text
    assert batch.json()["predictions"][:3] == [
        api.post("/predict", json=row).json()["predictions"][0] for row in rows[:3]
    ]


@pytest.mark.parametrize(
    ("request_kwargs", "status", "field"),
    [
        ({"json": _record(credit_limit=...)}, 422, "credit_limit"),
        ({"json": _record(customer_age="old")}, 422, "customer_age"),
        ({"json": _record(customer_age=None)}, 422, "customer_age"),
        # NaN is not JSON
        ({"content": json.dumps(_record(customer_age=float("nan"))), "headers": JSON}, 400, "body"),
        ({"json": _record(card_category="Titanium")}, 422, "card_category"),
        ({"json": _record(shoe_size=44)}, 422, "shoe_size"),
        ({"json": []}, 422, "records"),
        ({"json": [_record()] * (MAX_BATCH + 1)}, 422, "records"),
        ({"json": "a string"}, 422, "body"),
        ({"json": [_record(), 3]}, 422, "records[1]"),
        ({"content": b"{not json", "headers": JSON}, 400, "body"),
        ({"content": b"", "headers": JSON}, 400, "body"),
        (
            {"content": b"customer_age=3", "headers": {"content-type": "text/plain"}},
            415,
            "content-type",
        ),
        ({"content": b"{}"}, 415, "content-type"),
        ({"content": b"x" * (MAX_BODY_BYTES + 1), "headers": JSON}, 413, "body"),
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
        "not-a-record-in-a-list",
        "non-json",
        "empty-body",
        "content-type",
        "no-content-type",
        "too-big",
    ],
)
def test_predict_bad_input_gets_4xx_naming_the_field(api, request_kwargs, status, field) -> None:
    response = api.post("/predict", **request_kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["field"] == field
    assert field in body["detail"]


def test_predict_answers_post_only(api) -> None:
    response = api.get("/predict")
    assert response.status_code == 405 and response.json()["field"] == "method"


def _formats(rows: list[dict]) -> dict[str, dict]:
    names = list(rows[0])
    split = {"columns": names, "data": [[r[c] for c in names] for r in rows]}
    csv_lines = [",".join(names), *(",".join(str(r[c]) for c in names) for r in rows)]
    return {
        "dataframe_split": {"json": {"dataframe_split": split}},
        "dataframe_records": {"json": {"dataframe_records": rows}},
        "instances": {"json": {"instances": rows}},
        "inputs": {"json": {"inputs": rows}},
        "inputs-columns": {"json": {"inputs": {c: [r[c] for r in rows] for c in names}}},
        "csv": {"content": "\n".join(csv_lines), "headers": {"content-type": "text/csv"}},
    }


@pytest.mark.parametrize(
    "name",
    ["dataframe_split", "dataframe_records", "instances", "inputs", "inputs-columns", "csv"],
)
def test_invocations_accepts_every_mlflow_format_as_predict_does(api, name) -> None:
    rows = churn_records(5, seed=6)
    expected = api.post("/predict", json=rows).json()["predictions"]
    response = api.post("/invocations", **_formats(rows)[name])
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": expected}


def test_invocations_gives_probabilities_when_asked(api) -> None:
    rows = churn_records(2, seed=6)
    response = api.post(
        "/invocations", json={"dataframe_records": rows, "params": {"probabilities": True}}
    )
    assert response.status_code == 200, response.text
    assert [set(p) for p in response.json()["predictions"]] == [{"0", "1"}, {"0", "1"}]


@pytest.mark.parametrize(
    ("request_kwargs", "status", "message"),
    [
        (
            {"json": {"dataframe_records": [_record(card_category="Titanium")]}},
            400,
            "card_category",
        ),
        ({"json": {"records": [_record()]}}, 400, "dataframe_split"),
        ({"json": {"inputs": [_record()], "instances": [_record()]}}, 400, "exactly one"),
        ({"json": [_record()]}, 400, "JSON object"),
        ({"json": {"dataframe_records": _record()}}, 400, "dataframe_records"),
        ({"json": {"dataframe_split": {"columns": ["a"]}}}, 400, "dataframe_split"),
        ({"json": {"inputs": [_record()], "params": 3}}, 400, "params"),
        ({"content": b"{not json", "headers": JSON}, 400, "not valid JSON"),
        ({"content": b"a", "headers": {"content-type": "application/xml"}}, 415, "text/csv"),
        (
            {"content": b"a", "headers": {"content-type": "text/csv; charset=latin-1"}},
            415,
            "UTF-8",
        ),
        ({"content": b"", "headers": {"content-type": "text/csv"}}, 400, "empty CSV"),
        ({"content": b"a,b\n1", "headers": {"content-type": "text/csv"}}, 400, "line 2"),
        (
            {"content": b"customer_age\nold", "headers": {"content-type": "text/csv"}},
            400,
            "customer_age",
        ),
        ({"content": b"\xff\xfe", "headers": {"content-type": "text/csv"}}, 400, "UTF-8"),
    ],
    ids=[
        "unknown-category",
        "no-format",
        "two-formats",
        "not-an-object",
        "records-not-a-list",
        "split-without-data",
        "params-not-an-object",
        "non-json",
        "content-type",
        "charset",
        "empty-csv",
        "csv-short-line",
        "csv-wrong-type",
        "csv-not-utf8",
    ],
)
def test_invocations_bad_input_answers_in_mlflow_format(
    api, request_kwargs, status, message
) -> None:
    response = api.post("/invocations", **request_kwargs)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == "BAD_REQUEST" and message in body["message"], body


def test_kserve_v1_predict(api) -> None:
    rows = churn_records(3, seed=5)
    r = api.post("/v1/models/lifecycle-model:predict", json={"instances": rows})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 3
    other = api.post("/v1/models/other:predict", json={"instances": rows})
    assert other.status_code == 404 and other.json()["field"] == "name"
    assert api.post("/v1/models/lifecycle-model:predict", json=rows).status_code == 422
    not_a_list = api.post("/v1/models/lifecycle-model:predict", json={"instances": rows[0]})
    assert not_a_list.status_code == 422 and not_a_list.json()["field"] == "instances"
    bad_row = api.post(
        "/v1/models/lifecycle-model:predict", json={"instances": [_record(customer_age="old")]}
    )
    assert bad_row.status_code == 422 and bad_row.json()["field"] == "customer_age"


def test_openapi_describes_the_records_with_examples(api) -> None:
    doc = api.get("/openapi.json").json()
    record = doc["components"]["schemas"]["Record"]
    assert record["properties"]["card_category"]["anyOf"][0]["enum"]
    assert "customer_age" in record["required"]
    examples = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert examples["examples"]["one"]["value"]["customer_age"]
    assert api.get("/docs").status_code == 200
