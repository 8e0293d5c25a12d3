"""The Open Inference Protocol (v2) routes under real uvicorn, with real clients: tritonclient's
`InferenceServerClient` (JSON and binary tensors) and KServe's `InferenceRESTClient`. Their
answers equal /predict's on the same 100 rows; malformed requests get a 4xx naming the input."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from tests.fixtures.servers import own_mongo
from tests.fixtures.serving import ApiServer, api_env, churn_records
from tests.fixtures.training import copy_registry, register_copy

pytestmark = pytest.mark.integration

MODEL = "lifecycle-model"


@pytest.fixture(scope="module")
def v2_api(trained_registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """The session's model, served with a challenger (a copy of the champion registered again,
    in a copy of the registry) as a shadow, logging to a MongoDB-wire server of its own."""
    work = tmp_path_factory.mktemp("v2-api")
    settings = copy_registry(trained_registry.settings, work / "mlops")
    from lifecycle.stores import registry

    challenger = register_copy(settings, trained_registry.version)
    registry.client(settings).set_registered_model_alias(MODEL, registry.CHALLENGER, challenger)
    with own_mongo(work / "mongo") as mongo:
        env = api_env(work / "mlops", mongo.uri, "lifecycle", MLOPS_SHADOW_ALIAS="challenger")
        server = ApiServer(env).start()
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            _wait_for_challenger(client, challenger)
        server.challenger = challenger  # type: ignore[attr-defined]
        server.champion = trained_registry.version  # type: ignore[attr-defined]
        yield server
        server.stop()


def _wait_for_challenger(client: httpx.Client, version: str) -> None:
    from lifecycle.core.waiting import wait_until

    wait_until(
        lambda: client.get(f"/v2/models/{MODEL}/versions/{version}/ready").status_code,
        "the challenger to load",
        60,
        interval=0.2,
        done=lambda code: code == 200,
    )


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return churn_records(100, seed=41)


@pytest.fixture(scope="module")
def expected(v2_api: ApiServer, rows: list[dict[str, Any]]) -> dict[str, Any]:
    answer = httpx.post(f"{v2_api.url}/predict", json=rows, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _datatype(values: list[Any]) -> tuple[str, Any]:
    if isinstance(values[0], str):
        return "BYTES", np.array(values, dtype=object)
    if isinstance(values[0], int):
        return "INT64", np.array(values, dtype=np.int64)
    return "FP64", np.array(values, dtype=np.float64)


def _triton_inputs(rows: list[dict[str, Any]], binary: bool) -> list[Any]:
    import tritonclient.http as triton

    inputs = []
    for name in rows[0]:
        datatype, array = _datatype([r[name] for r in rows])
        tensor = triton.InferInput(name, [len(rows), 1], datatype)
        tensor.set_data_from_numpy(array.reshape(-1, 1), binary_data=binary)
        inputs.append(tensor)
    return inputs


def _assert_same(expected: dict[str, Any], labels: Any, proba: Any) -> None:
    assert list(np.ravel(labels)) == expected["predictions"]
    keys = list(expected["probabilities"][0])
    want = np.array([[p[k] for k in keys] for p in expected["probabilities"]], dtype=np.float32)
    assert proba.shape == (len(expected["predictions"]), len(keys))
    assert np.array_equal(proba.astype(np.float32), want)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_infer_equals_predict(v2_api, rows, expected, binary: bool) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=v2_api.url.removeprefix("http://"))
    result = client.infer(MODEL, _triton_inputs(rows, binary), request_id="req-7")
    _assert_same(expected, result.as_numpy("predict"), result.as_numpy("predict_proba"))
    answer = result.get_response()
    assert answer["id"] == "req-7" and answer["model_version"] == expected["model_version"]
    assert len(set(answer["parameters"]["prediction_ids"])) == len(rows)


def test_tritonclient_metadata_and_readiness(v2_api, rows) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=v2_api.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL) and not client.is_model_ready("no-such-model")
    assert not client.is_model_ready(MODEL, model_version="999")
    meta = client.get_model_metadata(MODEL)
    assert meta["name"] == MODEL and meta["versions"] == [v2_api.champion]
    types = {i["name"]: (i["datatype"], i["shape"]) for i in meta["inputs"]}
    assert list(types) == list(rows[0])
    assert types["gender"] == ("BYTES", [-1, 1]) and types["customer_age"][0] == "INT64"
    assert types["credit_limit"][0] == "FP64"
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]


def test_tritonclient_version_not_served_is_a_404_naming_the_served_one(v2_api, rows) -> None:
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(url=v2_api.url.removeprefix("http://"))
    with pytest.raises(InferenceServerException) as err:
        client.infer(MODEL, _triton_inputs(rows[:1], False), model_version="999")
    assert err.value.status() == "404"
    assert f"the served version is {v2_api.champion!r}" in err.value.message()


def test_a_challenger_may_be_addressed_by_its_version(v2_api, rows) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=v2_api.url.removeprefix("http://"))
    for version in (v2_api.challenger, v2_api.champion):
        result = client.infer(MODEL, _triton_inputs(rows[:3], False), model_version=version)
        assert result.get_response()["model_version"] == version
        meta = client.get_model_metadata(MODEL, model_version=version)
        assert meta["versions"] == [version]


def test_kserve_rest_client_infer_equals_predict(v2_api, rows, expected) -> None:
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    inputs = []
    for name in rows[0]:
        datatype, array = _datatype([r[name] for r in rows])
        tensor = InferInput(name, [len(rows), 1], datatype)
        tensor.set_data_from_numpy(array.reshape(-1, 1), binary_data=False)
        inputs.append(tensor)
    request = InferRequest(MODEL, inputs, request_id="k-1", parameters={"content_type": "pd"})

    async def call() -> tuple[Any, bool, bool]:
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
        try:
            live = await client.is_server_live(v2_api.url)
            ready = await client.is_model_ready(v2_api.url, MODEL)
            return await client.infer(v2_api.url, request, model_name=MODEL), live, ready
        finally:
            await client.close()

    response, live, ready = asyncio.run(call())
    assert live and ready and response.id == "k-1"
    outputs = {o.name: o.as_numpy() for o in response.outputs}
    _assert_same(expected, outputs["predict"], outputs["predict_proba"])


def test_v2_prediction_ids_take_feedback(v2_api, rows) -> None:
    body = {"inputs": _json_tensors(rows[:4])}
    answer = httpx.post(f"{v2_api.url}/v2/models/{MODEL}/infer", json=body, timeout=30).json()
    ids = answer["parameters"]["prediction_ids"]
    labels = answer["outputs"][0]["data"]
    feedback = [{"prediction_id": i, "actual": y} for i, y in zip(ids, labels, strict=True)]
    stored = httpx.post(f"{v2_api.url}/feedback", json=feedback, timeout=30)
    assert stored.status_code == 200, stored.text
    assert stored.json() == {"received": 4, "stored": 4}
    meta = httpx.get(f"{v2_api.url}/v2/models/{MODEL}", timeout=30).json()
    described = {o["name"]: o["datatype"] for o in meta["outputs"]}
    assert described == {o["name"]: o["datatype"] for o in answer["outputs"]}


def _json_tensors(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "name": n,
            "shape": [len(rows), 1],
            "datatype": _datatype([r[n] for r in rows])[0],
            "data": [r[n] for r in rows],
        }
        for n in rows[0]
    ]


def _bad(rows: list[dict[str, Any]], change: Any) -> Any:
    tensors = _json_tensors(rows)
    return change(tensors)


def _set(index: int, **fields: Any) -> Any:
    def change(tensors: list[dict[str, Any]]) -> dict[str, Any]:
        tensors[index].update(fields)
        return {"inputs": tensors}

    return change


# (what is wrong, the request body (bytes or a function of the tensors), text the error names)
MALFORMED = [
    ("not JSON", b"{inputs", "body"),
    ("empty body", b"", "body"),
    ("a list", b"[1, 2]", "body"),
    ("no inputs", b'{"id": "x"}', "inputs"),
    ("inputs not a list", b'{"inputs": {"a": 1}}', "inputs"),
    ("empty inputs", b'{"inputs": []}', "inputs"),
    ("id not a string", lambda t: {"id": 3, "inputs": t}, "id"),
    ("tensor not an object", lambda t: {"inputs": [*t, 5]}, "inputs[16]"),
    ("unnamed tensor", _set(0, name=None), "inputs[0]"),
    ("unknown input", _set(0, name="shoe_size"), "shoe_size"),
    ("input given twice", lambda t: {"inputs": [*t, t[0]]}, "customer_age"),
    ("missing feature", lambda t: {"inputs": t[1:]}, "customer_age"),
    ("string for an integer", _set(0, datatype="BYTES"), "customer_age"),
    ("number for a string", _set(1, datatype="FP64", data=[1.0, 2.0]), "gender"),
    ("unknown datatype", _set(0, datatype="INT128"), "customer_age"),
    ("data unlike its datatype", _set(0, data=["40", "41"]), "customer_age"),
    ("float in an INT64", _set(0, data=[1.5, 2]), "customer_age"),
    ("shape does not match data", _set(0, shape=[3, 1]), "customer_age"),
    ("two columns in one tensor", _set(0, shape=[1, 2]), "customer_age"),
    ("shape not a list", _set(0, shape="2"), "customer_age"),
    ("negative shape", _set(0, shape=[-2, 1]), "customer_age"),
    (
        "no data",
        lambda t: {"inputs": [{k: v for k, v in t[0].items() if k != "data"}, *t[1:]]},
        "customer_age",
    ),
    ("data not a list", _set(0, data=40), "customer_age"),
    ("deeply nested data", _set(0, data=[[[40]], [[41]]]), "customer_age"),
    ("rows disagree", _set(0, shape=[1, 1], data=[40]), "customer_age"),
    ("unknown category", _set(1, data=["X", "M"]), "gender"),
    ("null where none is allowed", _set(0, data=[None, 40]), "customer_age"),
    ("binary size beyond the body", _set(0, parameters={"binary_data_size": 99}), "customer_age"),
    ("unknown output", lambda t: {"inputs": t, "outputs": [{"name": "logits"}]}, "outputs[0]"),
]


@pytest.mark.parametrize(("what", "body", "names"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_requests_get_a_4xx_naming_the_input(v2_api, rows, what, body, names) -> None:
    content = body if isinstance(body, bytes) else None
    if content is None:
        import json

        content = json.dumps(body(_json_tensors(rows[:2]))).encode()
    answer = httpx.post(
        f"{v2_api.url}/v2/models/{MODEL}/infer",
        content=content,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert 400 <= answer.status_code < 500, (what, answer.status_code, answer.text)
    assert names in answer.json()["error"], (what, answer.text)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/v2/models/other/infer", 404),
        ("GET", f"/v2/models/{MODEL}/infer", 405),
        ("GET", "/v2/models/other", 404),
        ("GET", f"/v2/models/{MODEL}/versions/999", 404),
        ("GET", f"/v2/models/{MODEL}/versions/999/ready", 404),
    ],
)
def test_wrong_model_version_or_method_answers_in_the_protocols_shape(
    v2_api, method: str, path: str, status: int
) -> None:
    answer = httpx.request(method, f"{v2_api.url}{path}", json={"inputs": []}, timeout=30)
    assert answer.status_code == status and set(answer.json()) == {"error"}


def test_binary_tensor_header_longer_than_the_body_is_a_400(v2_api) -> None:
    answer = httpx.post(
        f"{v2_api.url}/v2/models/{MODEL}/infer",
        content=b'{"inputs": []}',
        headers={"inference-header-content-length": "500"},
        timeout=30,
    )
    assert answer.status_code == 400 and "inference-header-content-length" in answer.json()["error"]


def test_openapi_describes_the_v2_routes_with_examples(v2_api) -> None:
    doc = httpx.get(f"{v2_api.url}/openapi.json", timeout=30).json()
    infer = doc["paths"]["/v2/models/{name}/infer"]["post"]
    example = infer["requestBody"]["content"]["application/json"]["examples"]["one"]["value"]
    assert [t["name"] for t in example["inputs"]][:2] == ["customer_age", "gender"]
    assert "/v2/models/{name}/versions/{version}/infer" in doc["paths"]
    for path in (
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/versions/{version}",
    ):
        assert path in doc["paths"], path
    assert httpx.get(f"{v2_api.url}/docs", timeout=30).status_code == 200
