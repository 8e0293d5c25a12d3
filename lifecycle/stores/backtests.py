"""The `backtests` collection: one document per replay of a version on the prediction log
(reporting.backtest), written by the `backtest` flow and read by the index and `mlops status`.
Reached through an open PredictionStore, like the other collections."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo import DESCENDING

from lifecycle.stores.documents import BACKTESTS
from lifecycle.stores.prediction_store import PredictionStore


def insert_backtest(store: PredictionStore, document: Mapping[str, Any]) -> Any:
    """Insert one backtest document; its id."""
    return store.db[BACKTESTS].insert_one(dict(document)).inserted_id


def list_backtests(store: PredictionStore, model_name: str, limit: int = 20) -> list[dict]:
    """The newest backtests of a model, newest first."""
    cursor = store.db[BACKTESTS].find({"model_name": model_name}, {"_id": 0})
    return list(cursor.sort("created_at", DESCENDING).limit(limit))
