"""The prediction store: MongoDB collections `predictions`, `feedback` and `reports`.

Document shapes (DESIGN.md):
    predictions  {_id: prediction id (uuid str), ts: UTC datetime, model_name, model_version,
                  features: {name: raw value}, prediction, probabilities: {str(class): p} | None,
                  latency_ms, request_id, endpoint, sample_key: uniform in [0, 1),
                  shadow: {model_version, prediction, probabilities} (with a shadow)}
                                                                             insert-only
    feedback     {_id: prediction id, actual, ts}                            upserted
    reports      {_id, model_name, model_version, window_start, window_end, rows, labelled_rows,
                  drift_share, drifted_columns, metrics: {name: value}, primary_metric,
                  html_path, json_path, sampled, created_at}

Only plain pymongo is used, so a real mongod, a replica set or Atlas is a MONGO_URI away; locally
and in tests the server is nx-27017 (`mlops mongo`).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, MongoClient, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database

from lifecycle.core.errors import SharedServerError
from lifecycle.core.times import utcnow
from lifecycle.stores.documents import FeedbackDocument, PredictionDocument, ShadowScore

PREDICTIONS = "predictions"
FEEDBACK = "feedback"
REPORTS = "reports"
# On a server that cannot isolate databases: which database owns it (one document).
CLAIM = "lifecycle_server"
SAMPLE_KEY = "sample_key"
# Ids per `$in` query: well under MongoDB's 16 MB command limit, and few round trips.
ID_BATCH = 5000


def prediction_document(
    prediction_id: str,
    ts: datetime,
    model_name: str,
    model_version: str,
    features: dict[str, Any],
    prediction: Any,
    probabilities: dict[str, float] | None = None,
    latency_ms: float | None = None,
    request_id: str | None = None,
    endpoint: str = "/predict",
    shadow: ShadowScore | None = None,
) -> PredictionDocument:
    """One `predictions` document, in the shape every reader of the log expects.

    `sample_key` is drawn once, here, when the row is logged: a report samples a window with
    the indexed filter `sample_key < p` instead of reading the whole window (README, Report).
    `random.random()` costs well under a microsecond, and this runs in the shipper, off the
    request path.
    """
    document = PredictionDocument(
        _id=prediction_id,
        ts=ts,
        model_name=model_name,
        model_version=model_version,
        features=features,
        prediction=prediction,
        probabilities=probabilities,
        latency_ms=latency_ms,
        request_id=request_id,
        endpoint=endpoint,
        sample_key=random.random(),
    )
    if shadow is not None:  # only with MLOPS_SHADOW_ALIAS: other documents stay as they were
        document["shadow"] = shadow
    return document


class PredictionStore:
    """Thin, typed access to the three collections. Cheap to build; connects lazily."""

    def __init__(self, uri: str, database: str, timeout_ms: int = 2000) -> None:
        self.client: MongoClient = MongoClient(
            uri,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=max(timeout_ms * 5, 10_000),
            tz_aware=True,
        )
        self.db: Database = self.client[database]

    @classmethod
    def from_settings(cls, timeout_ms: int = 2000) -> PredictionStore:
        from lifecycle.core.settings import get_settings

        settings = get_settings()
        return cls(settings.mongo_uri, settings.mongo_db, timeout_ms)

    @property
    def predictions(self) -> Collection:
        return self.db[PREDICTIONS]

    @property
    def feedback(self) -> Collection:
        return self.db[FEEDBACK]

    @property
    def reports(self) -> Collection:
        return self.db[REPORTS]

    def close(self) -> None:
        self.client.close()

    def ensure_indexes(self, ttl_days: int | None = None) -> None:
        """The collections' indexes; `ttl_days` (MLOPS_PREDICTION_TTL_DAYS) makes the `ts` index
        a TTL index, so MongoDB deletes predictions older than that (unset: kept forever).
        On a server that keeps one namespace for all databases, first claims it (`claim_server`)."""
        self.claim_server()
        self._ensure_ts_index(ttl_days)
        self.predictions.create_index([("model_version", ASCENDING), ("ts", ASCENDING)])
        # The sampled read `ts in window and sample_key < p`: on MongoDB an index scan of the
        # window that fetches only the sampled documents.
        self.predictions.create_index([("ts", ASCENDING), (SAMPLE_KEY, ASCENDING)])
        # nx-27017 0.8.1 (neosqlite 1.17) wraps every datetime comparison in SQLite's
        # datetime(COALESCE(...)), which no index it creates matches: a `ts` range is a table
        # scan there. A `sample_key` range is an index range, so this index bounds the sampled
        # read to about p of the collection; it also answers `$exists: false` (old documents)
        # from the index alone.
        self.predictions.create_index([(SAMPLE_KEY, ASCENDING)])
        self.reports.create_index([("model_name", ASCENDING), ("window_end", DESCENDING)])

    def shares_one_namespace(self) -> bool:
        """True on nx-27017 (`mlops mongo`), where every database name reads and writes the same
        collections (nx-27017 0.8.1 / neosqlite 1.17.2). It is told apart by its `buildinfo`,
        which carries no `version`; MongoDB's always does."""
        return "version" not in self.client.admin.command("buildinfo")

    def claim_server(self) -> None:
        """Claim a one-namespace server for this database, or raise `SharedServerError` when
        another database claimed it first: two databases there would read, count and delete each
        other's predictions. A no-op on MongoDB, which keeps databases apart."""
        if not self.shares_one_namespace():
            return
        from pymongo.errors import DuplicateKeyError

        claims = self.db[CLAIM]
        try:
            claims.insert_one({"_id": "database", "name": self.db.name, "ts": utcnow()})
            return
        except DuplicateKeyError:
            owner = (claims.find_one({"_id": "database"}) or {}).get("name")
        if owner != self.db.name:
            raise SharedServerError(
                f"the MongoDB-wire server at {self._address()} already holds database "
                f"{owner!r} and keeps one database per server; for {self.db.name!r} start "
                f"another one (mlops mongo --port P) or set MLOPS_MONGO_DB={owner}"
            )

    def _address(self) -> str:
        host, port = next(iter(self.client.topology_description.server_descriptions()))
        return f"{host}:{port}"

    def _ensure_ts_index(self, ttl_days: int | None) -> None:
        # A TTL index on a regular collection, not a time-series one: those allow duplicate
        # _ids, which would break the journal's idempotent replay. MongoDB refuses to change an
        # index's options in create_index (IndexOptionsConflict), so a `ts` index whose TTL
        # differs from the setting is dropped first and built again.
        keys = [("ts", ASCENDING)]
        expire = {"expireAfterSeconds": ttl_days * 86_400} if ttl_days else {}
        for name, spec in self.predictions.index_information().items():
            same_keys = [(k, int(d)) for k, d in spec["key"]] == keys
            if same_keys and spec.get("expireAfterSeconds") != expire.get("expireAfterSeconds"):
                self.predictions.drop_index(name)
        self.predictions.create_index(keys, **expire)

    # -- predictions ----------------------------------------------------------------------------
    def insert_predictions(self, documents: Sequence[PredictionDocument]) -> int:
        """Insert a batch; ids already present are skipped, so a replay is idempotent.

        Returns how many documents are new. Raises pymongo errors other than duplicates.
        """
        from pymongo.errors import BulkWriteError

        if not documents:
            return 0
        try:
            result = self.predictions.insert_many(list(documents), ordered=False)
            return len(result.inserted_ids)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            return int(exc.details.get("nInserted", 0))

    def known_prediction_ids(self, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        cursor = self.predictions.find({"_id": {"$in": ids}}, {"_id": 1})
        return {doc["_id"] for doc in cursor}

    def iter_window(
        self,
        start: datetime,
        end: datetime,
        projection: Mapping[str, int] | None = None,
        batch_size: int = 5000,
        extra: Mapping[str, Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Predictions with start <= ts < end (and `extra`), oldest first, in batches."""
        cursor = (
            self.predictions.find(window_filter(start, end, extra), projection)
            .sort("ts", ASCENDING)
            .batch_size(batch_size)
        )
        yield from cursor

    def count_window(
        self, start: datetime, end: datetime, extra: Mapping[str, Any] | None = None
    ) -> int:
        """How many predictions have start <= ts < end (and match `extra`).

        The `count` command with a query, not `count_documents`: on MongoDB both count on the
        `ts` index (a COUNT_SCAN), but nx-27017 0.8.1 runs count_documents' `$group` stage in
        Python over every matching document (seconds per 100,000) while `count` is one SQL
        COUNT. (On a sharded cluster `count` can include orphaned documents.)
        """
        query = window_filter(start, end, extra)
        return int(self.db.command("count", PREDICTIONS, query=query)["n"])

    def iter_sample(
        self,
        start: datetime,
        end: datetime,
        low: float,
        high: float,
        projection: Mapping[str, int] | None = None,
        batch_size: int = 5000,
    ) -> Iterator[dict[str, Any]]:
        """The window's predictions with `low <= sample_key < high`: a uniform sample of about
        `high - low` of them, the same on every read (the keys were drawn at write time).

        Both bounds on purpose: with them SQLite under nx-27017 takes its (sample_key, ts)
        index (ops/local_servers.py) and reads only the matching rows; with `$lt` alone it
        scans the window by `ts`. On MongoDB the (ts, sample_key) index serves either form.
        """
        query = window_filter(start, end, {SAMPLE_KEY: {"$gte": low, "$lt": high}})
        yield from self.predictions.find(query, projection).batch_size(batch_size)

    def has_unkeyed(self) -> bool:
        """Whether any prediction lacks `sample_key` (logged before it existed)."""
        return self.predictions.find_one({SAMPLE_KEY: {"$exists": False}}, {"_id": 1}) is not None

    def versions_in(
        self, start: datetime, end: datetime, versions: Iterable[str]
    ) -> dict[str, int]:
        """Predictions per model version in the window, counted on the (model_version, ts)
        index, for the given versions."""
        return {v: self.count_window(start, end, {"model_version": v}) for v in versions}

    def predictions_for(
        self,
        ids: Sequence[str],
        start: datetime,
        end: datetime,
        projection: Mapping[str, int] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The predictions among `ids` that lie in the window, looked up by `_id` in batches."""
        for i in range(0, len(ids), ID_BATCH):
            query = window_filter(start, end, {"_id": {"$in": list(ids[i : i + ID_BATCH])}})
            yield from self.predictions.find(query, projection).batch_size(ID_BATCH)

    # -- feedback -------------------------------------------------------------------------------
    def upsert_feedback(self, labels: Mapping[str, Any], ts: datetime | None = None) -> int:
        """Store ground truth per prediction id; repeating a label changes nothing."""
        if not labels:
            return 0
        ts = ts or utcnow()
        documents = [
            FeedbackDocument(_id=pid, actual=actual, ts=ts) for pid, actual in labels.items()
        ]
        ops = [
            # The first label's time stays: a repeated label changes nothing.
            UpdateOne(
                {"_id": doc["_id"]},
                {"$set": {"actual": doc["actual"]}, "$setOnInsert": {"ts": doc["ts"]}},
                upsert=True,
            )
            for doc in documents
        ]
        result = self.feedback.bulk_write(ops, ordered=False)
        return result.upserted_count + result.modified_count

    def count_feedback_since(self, since: datetime) -> int:
        """Labels that arrived at or after `since` (every label of a window's predictions
        arrives after the window started)."""
        query = {"ts": {"$gte": since}}
        return int(self.db.command("count", FEEDBACK, query=query)["n"])

    def labels_since(self, since: datetime, batch_size: int = 10_000) -> Iterator[tuple[str, Any]]:
        """(prediction id, actual) of every label that arrived at or after `since`.

        Read in 16 `_id` ranges (by the first hex digit of the uuid; the first and last ranges
        are open, so any id is read exactly once): nx-27017 builds a query's whole result
        before it answers anything, its heartbeat included, and 30,000 labels in one find
        blocked it past the 5 s heartbeat at load 18 (pymongo _OperationCancelled). On MongoDB
        these are 16 ranges of the `_id` index.
        """
        for low, high in itertools.pairwise([None, *"123456789abcdef", None]):
            ids = {k: v for k, v in (("$gte", low), ("$lt", high)) if v is not None}
            cursor = self.feedback.find({"ts": {"$gte": since}, "_id": ids}, {"actual": 1})
            for doc in cursor.batch_size(batch_size):
                yield doc["_id"], doc.get("actual")

    def feedback_for(self, ids: Iterable[str], batch: int = 5000) -> dict[str, Any]:
        """Labels that have arrived for the given prediction ids."""
        ids = list(ids)
        out: dict[str, Any] = {}
        for i in range(0, len(ids), batch):
            documents: Iterable[FeedbackDocument] = self.feedback.find(
                {"_id": {"$in": ids[i : i + batch]}}
            )
            for doc in documents:
                out[doc["_id"]] = doc["actual"]
        return out

    # -- reports --------------------------------------------------------------------------------
    def insert_report(self, summary: Mapping[str, Any]) -> Any:
        return self.reports.insert_one(dict(summary)).inserted_id

    def latest_report(self, model_name: str | None = None) -> dict[str, Any] | None:
        query = {"model_name": model_name} if model_name else {}
        return self.reports.find_one(query, sort=[("window_end", DESCENDING)])

    def list_reports(self, model_name: str | None = None, limit: int = 1000) -> list[dict]:
        query = {"model_name": model_name} if model_name else {}
        return list(self.reports.find(query).sort("window_end", DESCENDING).limit(limit))


def window_filter(
    start: datetime, end: datetime, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The `predictions` filter of a window [start, end), with extra conditions."""
    return {"ts": {"$gte": start, "$lt": end}, **(extra or {})}
