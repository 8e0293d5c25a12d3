"""The MongoDB replica set of the Compose stack, checked without a Docker engine: three members
with a shared keyfile and a one-shot initiation that every MongoDB client waits for; the
shipper's store takes its write concern (w=majority, journal) from the Compose MONGO_URI and the
reports' reads prefer secondaries. MLOPS_PREDICTION_TTL_DAYS makes the `ts` index a TTL index,
on the local MongoDB-wire server (a regular collection, so `_id` stays unique)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pymongo import ReadPreference

from lifecycle.stores.prediction_store import PredictionStore
from tests.fixtures.operations import REPO_ROOT

MEMBERS = ("mongo", "mongo-2", "mongo-3")
CLIENTS = ("api", "prefect-worker", "exporter")


def test_compose_replica_set_members_share_a_keyfile_and_wait_for_it(compose_stack: dict) -> None:
    services = compose_stack["services"]
    for name in MEMBERS:
        member = services[name]
        command = member["command"]
        assert command[command.index("--replSet") + 1] == "rs0", name
        assert command[command.index("--keyFile") + 1] == "/etc/mongo-keyfile/keyfile", name
        assert "mongo-keyfile:/etc/mongo-keyfile:ro" in member["volumes"], name
        assert member["depends_on"]["mongo-keyfile"]["condition"] == (
            "service_completed_successfully"
        )
    # only the first member creates the root user; the others copy it by initial sync
    assert "MONGO_INITDB_ROOT_USERNAME" in services["mongo"]["environment"]
    assert "environment" not in services["mongo-2"] and "environment" not in services["mongo-3"]
    init = services["mongo-init"]
    assert {name: spec["condition"] for name, spec in init["depends_on"].items()} == dict.fromkeys(
        MEMBERS, "service_healthy"
    )
    script = (REPO_ROOT / "docker/mongo/init-replica-set.js").read_text()
    for name in MEMBERS:
        assert f'host: "{name}:27017"' in script
    for name in CLIENTS:
        assert services[name]["depends_on"]["mongo-init"]["condition"] == (
            "service_completed_successfully"
        ), name


def test_compose_mongo_uri_gives_the_shipper_a_majority_journaled_write_concern(
    compose_stack: dict,
) -> None:
    uri = compose_stack["services"]["api"]["environment"]["MONGO_URI"]
    store = PredictionStore(uri, "lifecycle")  # connects lazily: nothing is contacted here
    try:
        # the shipper inserts through exactly this store and collection
        assert store.predictions.write_concern.document == {"w": "majority", "j": True}
        assert store.client.options.replica_set_name == "rs0"
        assert store.predictions.read_preference == ReadPreference.PRIMARY
    finally:
        store.close()


def test_compose_reports_read_from_secondaries(compose_stack: dict) -> None:
    for name in ("prefect-worker", "exporter"):  # report flow runs; the exporter's report figures
        uri = compose_stack["services"][name]["environment"]["MONGO_URI"]
        store = PredictionStore(uri, "lifecycle")
        try:
            assert store.predictions.read_preference == ReadPreference.SECONDARY_PREFERRED, name
            assert store.reports.write_concern.document == {"w": "majority", "j": True}, name
        finally:
            store.close()


def _ts_index(store: PredictionStore) -> dict:
    [spec] = [s for s in store.predictions.index_information().values() if s["key"] == [("ts", 1)]]
    return spec


@pytest.fixture
def store(mongo_server) -> Iterator[PredictionStore]:
    """A store on this test's own server: nothing else writes there, nothing needs dropping."""
    store = PredictionStore(mongo_server.uri, "lifecycle")
    yield store
    store.close()


def test_store_ttl_days_make_the_ts_index_expire_predictions(store: PredictionStore) -> None:
    store.ensure_indexes(ttl_days=30)
    assert _ts_index(store)["expireAfterSeconds"] == 30 * 86_400
    store.ensure_indexes(ttl_days=7)  # a changed setting replaces the TTL
    assert _ts_index(store)["expireAfterSeconds"] == 7 * 86_400
    store.ensure_indexes()  # unset: kept forever
    assert "expireAfterSeconds" not in _ts_index(store)


def test_store_without_ttl_keeps_a_regular_collection_with_unique_ids(
    store: PredictionStore,
) -> None:
    from datetime import UTC, datetime

    from lifecycle.stores.documents import prediction_document

    store.ensure_indexes()
    assert "expireAfterSeconds" not in _ts_index(store)
    document = prediction_document("p-1", datetime.now(UTC), "m", "1", {"x": 1}, 0)
    assert store.insert_predictions([document]) == 1
    assert store.insert_predictions([document]) == 0  # a replay inserts nothing twice
    assert store.predictions.count_documents({}) == 1
