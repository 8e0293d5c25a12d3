"""POST /feedback: ground truth for earlier predictions (idempotent upsert)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pymongo.errors import PyMongoError

from lifecycle.stores.prediction_store import PredictionStore
from serving.deps import AdminKey, HolderDep, LoggerDep, SettingsDep, StoreDep
from serving.errors import ApiError
from serving.holder import LoadedModel
from serving.logger import PredictionLogger
from serving.schemas import Feedback, FeedbackAnswer

router = APIRouter(tags=["feedback"])


@router.post("/feedback", response_model=FeedbackAnswer)
async def feedback(
    body: Feedback | list[Feedback],
    _: AdminKey,
    settings: SettingsDep,
    holder: HolderDep,
    store: StoreDep,
    logger: LoggerDep,
    request: Request,
) -> FeedbackAnswer:
    """Store `actual` for one or many prediction ids; unknown ids 404, repeats change nothing."""
    items = body if isinstance(body, list) else [body]
    if not items:
        raise ApiError(422, "body: empty list; send at least one {prediction_id, actual}", "body")
    if len(items) > settings.max_batch:
        raise ApiError(
            422, f"body: {len(items)} labels is over the limit of {settings.max_batch}", "body"
        )
    labels = {item.prediction_id: _check_label(holder.current, item) for item in items}
    try:
        challenger = request.app.state.challenger  # rows waiting for their shadow score
        stored = await asyncio.to_thread(_store, store, logger, labels, challenger)
    except PyMongoError as exc:
        raise ApiError(503, f"MongoDB is unreachable, retry later ({type(exc).__name__})") from None
    return FeedbackAnswer(received=len(items), stored=stored)


def _check_label(model: LoadedModel | None, item: Feedback) -> Any:
    """For a classifier, `actual` must be one of the model's classes (given as value or text)."""
    if model is None or not model.is_classifier:
        if model is not None and (isinstance(item.actual, (str, bool))):
            raise ApiError(422, f"actual: expected a number; got {item.actual!r}", "actual")
        return item.actual
    for cls in model.predictor.spec.classes:
        if item.actual == cls or str(item.actual) == str(cls):
            if isinstance(item.actual, bool) and not isinstance(cls, bool):
                break
            return cls
    raise ApiError(
        422,
        f"actual: {item.actual!r} is not a class of this model; expected one of "
        f"{list(model.predictor.spec.classes)}",
        "actual",
    )


def _store(
    store: PredictionStore,
    logger: PredictionLogger | None,
    labels: dict[str, Any],
    challenger: Any = None,
) -> int:
    ids = set(labels)
    known = store.known_prediction_ids(ids)
    missing = ids - known
    if missing and challenger is not None:
        missing -= challenger.pending(missing)
    if missing and logger is not None:
        missing -= logger.pending(missing)  # accepted, still queued or spooled
    if missing:
        shown = sorted(missing)[:5]
        raise ApiError(404, f"prediction_id: unknown prediction id(s) {shown}", "prediction_id")
    return store.upsert_feedback(labels)
