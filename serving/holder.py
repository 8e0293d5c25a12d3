"""The model holder: which model version is served, and the watcher that swaps it.

`ModelHolder.check()` resolves `models:/NAME@ALIAS` through `lifecycle.stores.registry` (the one
door to MLflow, with its one error policy); on a new version it loads it (in a worker thread, off
the request path), smoke-tests it on its logged input example and swaps it in with one reference
assignment, so a request sees either the old model or the new one, never a mix.
A version that fails to load or predict is refused (counted, logged) and the old one keeps
serving; the refusal is remembered so the watcher does not retry the same broken version on
every poll.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from lifecycle.core.errors import ModelNotReadyError
from lifecycle.core.settings import Settings
from lifecycle.core.times import utcnow
from lifecycle.model.predictor import Predictor
from lifecycle.stores import registry, registry_loading
from serving.booster import DensePredictor
from serving.metrics import ServingMetrics
from serving.validation import RecordValidator

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """One loaded, smoke-tested model version and what the API says about it."""

    name: str
    version: str
    alias: str
    predictor: Predictor
    validator: RecordValidator
    loaded_at: datetime
    trained_at: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    example: list[dict[str, Any]] = field(default_factory=list)
    class_keys: tuple[str, ...] = ()
    load_seconds: float = 0.0
    dense: DensePredictor = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.dense is None:
            object.__setattr__(self, "dense", DensePredictor(self.predictor.booster))

    @property
    def is_classifier(self) -> bool:
        return self.predictor.spec.is_classifier

    def predict(self, matrix: np.ndarray) -> tuple[list[Any], np.ndarray | None]:
        """Fast path: the booster's C predictor on the validated matrix, decoded to labels."""
        return self.predictor.spec.decode(self.dense.predict(matrix))

    def describe(self) -> dict[str, Any]:
        return {
            "model_name": self.name,
            "model_version": self.version,
            "alias": self.alias,
            "loaded_at": self.loaded_at.isoformat(),
            "trained_at": self.trained_at,
            "task": self.predictor.spec.task,
            "features": self.predictor.spec.names,
            "classes": list(self.predictor.spec.classes),
            "metrics": self.metrics,
            "run_id": self.run_id,
            "load_seconds": round(self.load_seconds, 3),
        }


class ModelHolder:
    """Holds the served model and keeps it in step with the registry alias."""

    def __init__(
        self, settings: Settings, metrics: ServingMetrics, alias: str | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        # The alias followed: the served one, or the shadow / canary challenger's
        # (serving.shadow), which is not the served model of `mlops_model_info`.
        self.alias = alias or settings.model_alias
        self.primary = self.alias == settings.model_alias
        self.current: LoadedModel | None = None
        self.reason = "the model is loading"
        self.checked_at: datetime | None = None  # when the last check of the alias ended
        self._refused: set[str] = set()
        self._lock = threading.Lock()  # one check at a time (watcher vs. POST /reload)

    def require(self) -> LoadedModel:
        model = self.current
        if model is None:
            raise ModelNotReadyError(self.reason)
        return model

    # -- registry -------------------------------------------------------------------------------
    def check(self, force: bool = False) -> str:
        """Resolve the alias and swap if it moved. Returns what happened, in one word.

        `force` retries a version refused before (POST /reload after fixing the registry).
        """
        with self._lock:
            try:
                return self._check(force)
            finally:
                self.checked_at = utcnow()

    def _check(self, force: bool) -> str:
        name, alias = self.settings.model_name, self.alias
        try:
            version = registry.version_by_alias(alias, self.settings)
        except registry.RegistryUnavailableError as exc:
            return self._unavailable(str(exc))
        if version is None:
            if not self.primary and self.current is not None:
                # A challenger whose alias was removed (stopped by the live test, or by hand)
                # is let go: canary traffic returns to the champion, the shadow stops scoring.
                log.info(
                    "alias %s@%s removed: dropping version %s", name, alias, self.current.version
                )
                self.current = None
                return "dropped"
            return self._unavailable(f"no model version has alias {name}@{alias} yet")
        current = self.current
        number = str(version.version)
        if current is not None and current.version == number:
            return "unchanged"
        if number in self._refused and not force:
            return "refused"
        try:
            loaded = self._load(version)
        except Exception as exc:  # any load/predict failure refuses the version
            self._refuse(number, exc, current)
            return "failed"
        self._swap(loaded, current)
        return "swapped"

    def _refuse(self, version: str, exc: Exception, current: LoadedModel | None) -> None:
        """Remember, count and log a version that failed to load; the old one keeps serving."""
        name = self.settings.model_name
        self._refused.add(version)
        self.metrics.reloads.labels(result="failure").inc()
        log.error(
            "refused %s version %s: %s (still serving %s)",
            name,
            version,
            _one_line(exc),
            f"version {current.version}" if current else "nothing",
        )
        if current is None:
            self.reason = f"version {version} of {name} failed to load: {_one_line(exc)}"

    def _swap(self, loaded: LoadedModel, current: LoadedModel | None) -> None:
        self._refused.discard(loaded.version)
        self.current = loaded  # the swap: one reference assignment
        # Everything loaded so far (mlflow, pandas, the model) lives as long as the process:
        # keep it out of the cyclic GC, whose full passes otherwise walk ~300k objects
        # (~70 ms each, measured) while prediction-log documents churn the young generations.
        gc.freeze()
        self.metrics.reloads.labels(result="success").inc()
        if self.primary:
            self.metrics.set_model(
                loaded.name, loaded.version, loaded.alias, loaded.loaded_at.timestamp()
            )
        # INFO: a swap is the watcher doing its job, not something to warn an operator about.
        log.info(
            "serving %s version %s (was %s)",
            loaded.name,
            loaded.version,
            current.version if current else "nothing",
        )

    def _unavailable(self, reason: str) -> str:
        if self.current is None:
            self.reason = reason
        else:  # keep serving what we have; the registry may come back
            log.warning("%s; still serving version %s", reason, self.current.version)
        return "unavailable"

    def _load(self, version: ModelVersion) -> LoadedModel:
        """Download, load, smoke-test: raises on any problem, leaving the holder untouched."""
        t0 = time.perf_counter()
        found = registry_loading.load_version(version, self.settings)
        predictor = found.predictor
        validator = RecordValidator(predictor.spec, found.pyfunc.metadata.get_input_schema())
        example: list[dict[str, Any]] = []
        if found.input_example is not None:
            example = found.input_example.to_dict(orient="records")
            self._smoke_test(predictor, validator, found.pyfunc, found.input_example, example)
        info = registry.describe(version)
        loaded = LoadedModel(
            name=version.name,
            version=str(version.version),
            alias=self.alias,
            predictor=predictor,
            validator=validator,
            loaded_at=utcnow(),
            trained_at=info["trained_at"],
            metrics=info["metrics"],
            run_id=info["run_id"],
            example=example,
            class_keys=tuple(str(c) for c in predictor.spec.classes),
            load_seconds=time.perf_counter() - t0,
        )
        log.info("loaded version %s in %.2fs", loaded.version, loaded.load_seconds)
        return loaded

    @staticmethod
    def _smoke_test(
        predictor: Predictor,
        validator: RecordValidator,
        pyfunc_model: Any,
        frame: Any,
        records: list[dict[str, Any]],
    ) -> None:
        """The fast path must answer the logged example exactly as the pyfunc does."""
        matrix = validator.encode(records, max_batch=len(records) or 1)
        labels, _ = predictor.spec.decode(DensePredictor(predictor.booster).predict(matrix))
        expected = list(np.asarray(pyfunc_model.predict(frame)).tolist())
        if labels != expected:
            raise ModelNotReadyError(
                f"smoke test failed: fast path {labels[:5]} != pyfunc {expected[:5]}"
            )

    # -- watcher --------------------------------------------------------------------------------
    async def run(self) -> None:
        """First load with backoff (tenacity), then poll the alias every poll interval."""
        poll = self.settings.model_poll_seconds
        retrying = AsyncRetrying(
            wait=wait_exponential(multiplier=0.5, max=min(poll, 30.0)),
            retry=retry_if_exception_type(ModelNotReadyError),
            before_sleep=lambda state: log.warning(
                "no model yet (%s); retrying in %.1fs", self.reason, state.upcoming_sleep
            ),
        )
        async for attempt in retrying:
            with attempt:
                await asyncio.to_thread(self.check)
                self.require()
        while True:
            await asyncio.sleep(poll)
            try:
                await asyncio.to_thread(self.check)
            except Exception:  # the watcher must outlive any surprise; the next poll retries
                log.exception("model check failed")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
