"""The prediction store: MongoDB collections `predictions`, `feedback` and `reports`.

Document shapes (DESIGN.md):
    predictions  {_id: prediction id (uuid str), ts: UTC datetime, model_name, model_version,
                  features: {name: raw value}, prediction, probabilities: {str(class): p} | None,
                  latency_ms, request_id, endpoint}                         insert-only
    feedback     {_id: prediction id, actual, ts}                            upserted
    reports      {_id, model_name, model_version, window_start, window_end, rows, labelled_rows,
                  drift_share, drifted_columns, metrics: {name: value}, primary_metric,
                  html_path, json_path, sampled, created_at}

Only plain pymongo is used, so a real mongod, a replica set or Atlas is a MONGO_URI away; locally
and in tests the server is nx-27017 (`mlops mongo`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, MongoClient, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database

from lifecycle.documents import FeedbackDocument, PredictionDocument
from lifecycle.times import utcnow

PREDICTIONS = "predictions"
FEEDBACK = "feedback"
REPORTS = "reports"


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
) -> PredictionDocument:
    """One `predictions` document, in the shape every reader of the log expects."""
    return PredictionDocument(
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
    )


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
        from lifecycle.settings import get_settings

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

    def ensure_indexes(self) -> None:
        self.predictions.create_index([("ts", ASCENDING)])
        self.predictions.create_index([("model_version", ASCENDING), ("ts", ASCENDING)])
        self.reports.create_index([("model_name", ASCENDING), ("window_end", DESCENDING)])

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
    ) -> Iterator[dict[str, Any]]:
        """Predictions with start <= ts < end, oldest first, streamed in batches."""
        cursor = (
            self.predictions.find({"ts": {"$gte": start, "$lt": end}}, projection)
            .sort("ts", ASCENDING)
            .batch_size(batch_size)
        )
        yield from cursor

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
