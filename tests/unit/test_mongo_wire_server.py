"""What the local MongoDB-wire server (nx-27017, `mlops mongo`) can and cannot do, pinned.

nx-27017 0.8.1 on neosqlite 1.17.2 keeps one namespace for every database name on a server.
The suite gives each user of it a server of its own (tests/fixtures/servers.py `own_mongo`), and
`PredictionStore.claim_server` refuses a second Lifecycle database on one server. The first test
fails when an nx-27017 release isolates databases: then both workarounds can go.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient

from lifecycle.core.errors import SharedServerError
from lifecycle.stores import journal
from lifecycle.stores.prediction_store import PredictionStore
from serving.shipper import Shipper
from tests.unit.test_serving_logger import _request


@pytest.fixture
def client(mongo_server) -> Iterator[MongoClient]:
    client = MongoClient(mongo_server.uri, serverSelectionTimeoutMS=5000)
    yield client
    client.close()


def test_nx27017_databases_share_one_namespace(client: MongoClient) -> None:
    client["a"]["predictions"].insert_many([{"_id": i} for i in range(5)])
    seen_from_b = client["b"]["predictions"].count_documents({})
    assert seen_from_b == 5, (
        "nx-27017 now keeps databases apart: the one-server-per-user fixtures and "
        "PredictionStore.claim_server's refusal can be simplified"
    )
    client.drop_database("b")  # and one database's clean-up empties the other's collections
    assert client["a"]["predictions"].count_documents({}) == 0


def test_store_sees_one_namespace_on_nx27017(mongo_server) -> None:
    store = PredictionStore(mongo_server.uri, "lifecycle")
    try:
        assert store.shares_one_namespace()
    finally:
        store.close()


def test_store_claims_the_server_for_its_database_and_refuses_a_second(mongo_server) -> None:
    first = PredictionStore(mongo_server.uri, "lifecycle")
    again = PredictionStore(mongo_server.uri, "lifecycle")
    other = PredictionStore(mongo_server.uri, "staging")
    try:
        first.ensure_indexes()
        again.ensure_indexes()  # the owner may open it as often as it likes
        with pytest.raises(SharedServerError) as refused:
            other.ensure_indexes()
        message = str(refused.value)
        assert "already holds database 'lifecycle'" in message
        assert "'staging'" in message and "mlops mongo --port" in message
        assert other.predictions.index_information().keys() == (
            first.predictions.index_information().keys()
        )  # refused before it touched anything
    finally:
        for store in (first, again, other):
            store.close()


def test_shipper_keeps_predictions_on_disk_when_another_database_owns_the_server(
    mongo_server, tmp_path: Path
) -> None:
    owner = PredictionStore(mongo_server.uri, "lifecycle")
    owner.claim_server()
    store = PredictionStore(mongo_server.uri, "staging")
    segment = tmp_path / journal.segment_name(os.getpid(), 1, journal.SEALED)
    segment.write_bytes(journal.encode_entry(_request(3)))
    try:
        shipper = Shipper(store, tmp_path, os.getpid(), out=-1)
        assert shipper.ship(segment) is False
        assert segment.exists()  # nothing accepted is lost: it waits for a server of its own
        assert owner.predictions.count_documents({}) == 0  # and nothing mixed into 'lifecycle'
        assert shipper.mongo_up is False
    finally:
        owner.close()
        store.close()


def test_mlops_mongo_claims_its_database_and_stops_its_server_on_sigterm(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from lifecycle.core.waiting import wait_until
    from ops.local_servers import free_port

    port = free_port()
    env = {**os.environ, "MLOPS_HOME": str(tmp_path)}
    mlops = Path(sys.executable).parent / "mlops"
    command = [str(mlops), "mongo", "--port", str(port), "--database", "staging"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    other = PredictionStore(f"mongodb://127.0.0.1:{port}", "lifecycle", timeout_ms=5000)
    try:
        claimed = wait_until(
            lambda: other.db["lifecycle_server"].find_one({"_id": "database"}),
            "mlops mongo to claim its server",
            60,
            interval=0.2,
            ignore=(Exception,),
        )
        assert claimed["name"] == "staging"
        assert (tmp_path / "mongo" / "staging.db").exists()  # a file of its own per database
        server_pid = int((tmp_path / "mongo" / "staging.pid").read_text())
        with pytest.raises(SharedServerError, match="already holds database 'staging'"):
            other.ensure_indexes()
    finally:
        other.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    # the server went with it: nothing is left behind
    wait_until(lambda: not _alive(server_pid), "nx-27017 to stop", 20, interval=0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
