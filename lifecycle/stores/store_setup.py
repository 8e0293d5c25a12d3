"""The prediction store's server made ready: the collections' indexes (a TTL on `ts` when
predictions expire), and on a server that keeps one namespace for every database (nx-27017,
`mlops mongo`) the claim that makes it this database's alone. `PredictionStore.ensure_indexes`
runs both; each takes the pymongo objects the store opened."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.database import Database

from lifecycle.core.errors import SharedServerError
from lifecycle.core.times import utcnow
from lifecycle.stores.documents import CLAIM, PREDICTIONS, REPORTS, SAMPLE_KEY


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
