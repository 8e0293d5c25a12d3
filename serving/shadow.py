"""Live experiments in the API: a shadow challenger scored on every request off the request path,
and a canary share of requests answered by the challenger.

* `MLOPS_SHADOW_ALIAS=challenger`: a second `ModelHolder` follows that alias, with the champion's
  loading, smoke test and hot swap (serving.holder). A request is answered by the champion as
  always; its journal entry goes to the `ShadowScorer` instead of straight to the logger. The
  scorer's thread scores a batch of requests with the shadow in one call, puts the shadow's
  answers in each entry (`shadow`) and hands the entries to the logger, so each document
  carries `shadow: {model_version, prediction, probabilities}` beside the champion's answer.
* `MLOPS_CANARY_PERCENT=N`: N % of requests are answered by the challenger (the document's
  `model_version` is the version that answered). Sticky by a hash of the `X-Entity-Id`
  header when a client sends one, random otherwise. With a shadow too, the model that did not
  answer is the shadow, so every labelled row is a paired comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import threading
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from lifecycle.core.settings import Settings
from lifecycle.stores.journal import JournalEntry
from serving.holder import LoadedModel, ModelHolder
from serving.logger import PredictionLogger
from serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

DEFAULT_ALIAS = "challenger"  # the canary's alias when no shadow alias is set
ENTITY_HEADER = "x-entity-id"
BUCKETS = 10_000  # canary resolution: 0.01 %


def canary_bucket(entity: str) -> float:
    """A stable position in [0, 100) for an entity id (the same on every replica and restart)."""
    digest = hashlib.blake2b(entity.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS * 100 / BUCKETS


class Challenger:
    """The challenger alias's holder, the canary split and the shadow scorer of one API."""

    def __init__(self, settings: Settings, metrics: ServingMetrics) -> None:
        self.holder = ModelHolder(settings, metrics, settings.shadow_alias or DEFAULT_ALIAS)
        self.percent = settings.canary_percent
        self.shadow = settings.shadow_alias is not None
        self.scorer: ShadowScorer | None = None
        self._same: dict[tuple[str, str], bool] = {}  # (answered, shadow) -> encode alike

    @classmethod
    def from_settings(cls, settings: Settings, metrics: ServingMetrics) -> Challenger | None:
        """None unless MLOPS_SHADOW_ALIAS or MLOPS_CANARY_PERCENT asks for a challenger."""
        if settings.shadow_alias is None and settings.canary_percent <= 0:
            return None
        return cls(settings, metrics)

    def start(self, logger: PredictionLogger | None) -> None:
        """Start the shadow scorer (a shadow needs the prediction log: it is where it goes)."""
        if self.shadow and logger is not None:
            self.scorer = ShadowScorer(logger)
            self.scorer.start()

    def close(self) -> None:
        if self.scorer is not None:
            self.scorer.close()

    def route(
        self, champion: LoadedModel, headers: dict[str, str]
    ) -> tuple[LoadedModel, LoadedModel | None]:
        """(the model that answers, the model that shadows it or None) for one request."""
        challenger = self.holder.current
        if challenger is None or challenger.version == champion.version:
            return champion, None
        if self.percent > 0:
            entity = headers.get(ENTITY_HEADER)
            position = canary_bucket(entity) if entity else random.random() * 100
            if position < self.percent:
                return challenger, (champion if self.shadow else None)
        return champion, (challenger if self.shadow else None)

    def log(
        self,
        logger: PredictionLogger,
        entry: JournalEntry,
        shadow: LoadedModel | None,
        answered: LoadedModel,
        records: list[Any],
        matrix: np.ndarray,
    ) -> None:
        """Journal `entry`, through the shadow scorer when the request has a shadow."""
        if shadow is None or self.scorer is None:
            logger.log(entry)
        else:
            # The answering model's matrix serves the shadow too when both encode alike.
            pair = (answered.version, shadow.version)
            same = self._same.get(pair)
            if same is None:
                same = shadow.predictor.spec.to_dict() == answered.predictor.spec.to_dict()
                self._same[pair] = same
            self.scorer.submit(entry, shadow, matrix if same else records)

    def pending(self, ids: set[str]) -> set[str]:
        return self.scorer.pending(ids) if self.scorer is not None else set()


@contextlib.asynccontextmanager
async def challenging(
    challenger: Challenger | None, logger: PredictionLogger | None
) -> AsyncIterator[None]:
    """For the app's lifespan: the challenger's watcher and shadow scorer run inside the block
    (nothing without MLOPS_SHADOW_ALIAS / MLOPS_CANARY_PERCENT)."""
    if challenger is None:
        yield
        return
    challenger.start(logger)
    watcher = asyncio.create_task(challenger.holder.run(), name="challenger-watcher")
    try:
        yield
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
        await asyncio.to_thread(challenger.close)  # scores and logs what is still queued


class ShadowScorer:
    """A thread that scores queued requests with their shadow model in batches, then logs them."""

    def __init__(self, logger: PredictionLogger, interval: float = 0.05, max_rows: int = 4096):
        self.logger = logger
        self.interval = interval
        self.max_rows = max_rows
        # (entry, shadow model, matrix or records): appended by requests (atomic in CPython).
        self._queue: deque[tuple[JournalEntry, LoadedModel, Any]] = deque()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="shadow-scorer", daemon=True)
        self._thread.start()

    def submit(self, entry: JournalEntry, shadow: LoadedModel, rows: Any) -> None:
        self._queue.append((entry, shadow, rows))

    def pending(self, ids: set[str]) -> set[str]:
        """Which of `ids` are waiting for their shadow score (accepted, not journaled yet)."""
        return {i for entry, _, _ in list(self._queue) for i in entry.ids if i in ids}

    def close(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(10)
        self.drain()  # whatever came in meanwhile: the log never loses an accepted request

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.drain()
            except Exception:  # the thread must outlive any surprise; entries are logged anyway
                log.exception("shadow scoring failed")

    def drain(self) -> int:
        """Score and log what is queued, in batches per shadow version. Returns the requests."""
        batch: list[tuple[JournalEntry, LoadedModel, Any]] = []
        rows = 0
        while self._queue and rows < self.max_rows:
            item = self._queue.popleft()
            batch.append(item)
            rows += len(item[0].ids)
        by_model: dict[str, list[tuple[JournalEntry, LoadedModel, Any]]] = {}
        for item in batch:
            by_model.setdefault(item[1].version, []).append(item)
        for items in by_model.values():
            self._score(items)
        return len(batch)

    def _score(self, items: list[tuple[JournalEntry, LoadedModel, Any]]) -> None:
        shadow = items[0][1]
        try:
            matrices = [
                rows if isinstance(rows, np.ndarray) else shadow.validator.encode(rows, len(rows))
                for _, _, rows in items
            ]
            labels, proba = shadow.predict(np.vstack(matrices))
        except Exception as exc:  # a shadow that cannot score never costs the champion's log
            self.failures += 1
            log.warning(
                "shadow v%s could not score %d requests: %s", shadow.version, len(items), exc
            )
            for entry, _, _ in items:
                self.logger.log(entry)
            return
        start = 0
        for entry, _, _ in items:
            end = start + len(entry.ids)
            answer = {
                "model_version": shadow.version,
                "predictions": labels[start:end],
                "class_keys": list(shadow.class_keys),
                "probabilities": proba[start:end] if proba is not None else None,
            }
            self.logger.log(entry._replace(shadow=answer))
            start = end
