"""The prediction store's connection and server made ready: how long each purpose waits for the
server (`TIMEOUTS_MS`), the collections' indexes (a TTL on `ts` when predictions expire), and on
a server that keeps one namespace for every database (nx-27017, `mlops mongo`) the claim that
makes it this database's alone. `PredictionStore.ensure_indexes` runs both; each takes the
pymongo objects the store opened."""

from __future__ import annotations

from typing import Literal

from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.database import Database

from lifecycle.core.errors import SharedServerError
from lifecycle.core.times import utcnow
from lifecycle.stores.documents import CLAIM, PREDICTIONS, REPORTS, SAMPLE_KEY

# Who opens the store, each with how long it waits for the server: server selection and connect
# time-outs in ms (a socket read gets five times as long, at least 10 s).
Purpose = Literal[
    "request",
    "shipper",
    "stream",
    "status",
    "exporter",
    "cli",
    "demo",
    "training",
    "report",
    "window",
]
TIMEOUTS_MS: dict[Purpose, int] = {
    # The API (feedback route, indexes at start) and the journal's shipper: predictions wait in
    # the journal while MongoDB is away, and a request or a retry must not wait on it.
    "request": 1000,
    "shipper": 1000,
    "stream": 2000,  # the stream consumer's checkpoints
    # `mlops status` and the exporter: a store that is down shows as such, within one look or
    # one scrape.
    "status": 1500,
    "exporter": 1500,
    "cli": 3000,  # `mlops experiment`
    "demo": 5000,  # `mlops demo` reading back the report it made
    "training": 5000,  # labelled production rows for training (lifecycle.data.feedback)
    "report": 5000,  # the report and experiment flows' small reads and writes
    # The report flow reading a window: 20 s, not 5: nx-27017 answers nothing else, its heartbeat
    # included, while it builds a query's result (up to MLOPS_REPORT_MAX_LABELLED labels in one
    # find), and a heartbeat past connectTimeoutMS cancels the read (pymongo
    # _OperationCancelled, seen at load 11).
    "window": 20_000,
}


def ensure_indexes(db: Database, ttl_days: int | None = None) -> None:
    """The collections' indexes; `ttl_days` (MLOPS_PREDICTION_TTL_DAYS) makes the `ts` index a
    TTL index, so MongoDB deletes predictions older than that (unset: kept forever)."""
    predictions = db[PREDICTIONS]
    _ensure_ts_index(predictions, ttl_days)
    predictions.create_index([("model_version", ASCENDING), ("ts", ASCENDING)])
    # The sampled read `ts in window and sample_key < p`: on MongoDB an index scan of the
    # window that fetches only the sampled documents.
    predictions.create_index([("ts", ASCENDING), (SAMPLE_KEY, ASCENDING)])
    # nx-27017 0.8.1 (neosqlite 1.17) wraps every datetime comparison in SQLite's
    # datetime(COALESCE(...)), which no index it creates matches: a `ts` range is a table
    # scan there. A `sample_key` range is an index range, so this index bounds the sampled
    # read to about p of the collection; it also answers `$exists: false` (old documents)
    # from the index alone.
    predictions.create_index([(SAMPLE_KEY, ASCENDING)])
    db[REPORTS].create_index([("model_name", ASCENDING), ("window_end", DESCENDING)])


def shares_one_namespace(client: MongoClient) -> bool:
    """True on nx-27017 (`mlops mongo`), where every database name reads and writes the same
    collections (nx-27017 0.8.1 / neosqlite 1.17.2). It is told apart by its `buildinfo`,
    which carries no `version`; MongoDB's always does."""
    return "version" not in client.admin.command("buildinfo")


def claim_server(client: MongoClient, db: Database) -> None:
    """Claim a one-namespace server for database `db`, or raise `SharedServerError` when
    another database claimed it first: two databases there would read, count and delete each
    other's predictions. A no-op on MongoDB, which keeps databases apart."""
    if not shares_one_namespace(client):
        return
    from pymongo.errors import DuplicateKeyError

    claims = db[CLAIM]
    try:
        claims.insert_one({"_id": "database", "name": db.name, "ts": utcnow()})
        return
    except DuplicateKeyError:
        owner = (claims.find_one({"_id": "database"}) or {}).get("name")
    if owner != db.name:
        raise SharedServerError(
            f"the MongoDB-wire server at {_address(client)} already holds database "
            f"{owner!r} and keeps one database per server; for {db.name!r} start "
            f"another one (mlops mongo --port P) or set MLOPS_MONGO_DB={owner}"
        )


def _address(client: MongoClient) -> str:
    host, port = next(iter(client.topology_description.server_descriptions()))
    return f"{host}:{port}"


def _ensure_ts_index(predictions: Collection, ttl_days: int | None) -> None:
    # A TTL index on a regular collection, not a time-series one: those allow duplicate
    # _ids, which would break the journal's idempotent replay. MongoDB refuses to change an
    # index's options in create_index (IndexOptionsConflict), so a `ts` index whose TTL
    # differs from the setting is dropped first and built again.
    keys = [("ts", ASCENDING)]
    expire = {"expireAfterSeconds": ttl_days * 86_400} if ttl_days else {}
    for name, spec in predictions.index_information().items():
        same_keys = [(k, int(d)) for k, d in spec["key"]] == keys
        if same_keys and spec.get("expireAfterSeconds") != expire.get("expireAfterSeconds"):
            predictions.drop_index(name)
    predictions.create_index(keys, **expire)
