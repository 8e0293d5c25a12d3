"""The FastAPI app factory: `create_app(settings)` wires holder, logger, metrics and routes.

`uvicorn --factory serving.app:create_app` (what `mlops serve` runs) builds one per worker. The
model is loaded in the lifespan, never at import; the API starts even when the registry or
MongoDB is down and says so on /ready and in 503 answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from lifecycle.core.errors import SharedServerError
from lifecycle.core.settings import Settings, get_settings
from lifecycle.stores.prediction_store import PredictionStore
from serving.asgi.call import Route
from serving.asgi.router import PredictionRoutes
from serving.errors import install_handlers
from serving.holder import ModelHolder
from serving.logger import PredictionLogger
from serving.metrics import ServingMetrics
from serving.routes import admin, feedback, health, predict, v2
from serving.schemas import openapi
from serving.shadow import Challenger, challenging

log = logging.getLogger(__name__)

DESCRIPTION = """Predictions from the model the registry alias points to (`MLOPS_MODEL_ALIAS`).

* `POST /predict`: one record or a list; predictions, probabilities, one `prediction_id` per row.
* `POST /invocations`: the MLflow scoring protocol (drop-in for `mlflow models serve`).
* `POST /v1/models/{name}:predict`: KServe v1.
* `POST /v2/models/{name}[/versions/{version}]/infer`: the Open Inference Protocol (KServe v2,
  Triton): one tensor per feature column, as MLServer's pandas codec; `GET /v2/...` for health,
  metadata and readiness.
* `POST /feedback`: ground truth for earlier predictions.
"""


class MetricsMiddleware:
    """Counts every request by route template and status, and times it (pure ASGI: cheap)."""

    def __init__(self, app: Any, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(endpoint, status, time.perf_counter() - start)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API. Nothing connects or loads until the app starts (lifespan)."""
    settings = settings or get_settings()
    metrics = ServingMetrics(settings.prometheus_multiproc_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = PredictionStore.open(settings, "request")
        app.state.store = store
        if settings.log_predictions:
            app.state.logger = PredictionLogger(
                settings.spool_dir,
                settings.mongo_uri,
                settings.mongo_db,
                max_queue=settings.log_queue,
                on_change=lambda queued, spooled: (
                    metrics.log_queue.set(queued),
                    metrics.log_spooled.set(spooled),
                ),
            )
            app.state.logger.start()
        # Indexes are best effort: MongoDB may be down now; the journal keeps predictions meanwhile.
        index_task = asyncio.create_task(
            asyncio.to_thread(_ensure_indexes, store, settings.prediction_ttl_days)
        )
        watcher = asyncio.create_task(app.state.holder.run(), name="model-watcher")
        try:
            async with challenging(app.state.challenger, app.state.logger):  # shadow, canary
                yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
            index_task.cancel()
            if app.state.logger is not None:
                await asyncio.to_thread(app.state.logger.close)
            store.close()

    app = FastAPI(
        title="Lifecycle prediction API",
        version="1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.holder = ModelHolder(settings, metrics)
    app.state.challenger = Challenger.from_settings(settings, metrics)
    app.state.logger = None
    app.state.store = None
    for module in (feedback, admin, health, v2):
        app.include_router(module.router)
    install_handlers(app)
    app.openapi = lambda: openapi(app)  # type: ignore[method-assign]
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    # Added last, so it runs first: the prediction routes skip FastAPI's per-request machinery.
    app.add_middleware(PredictionRoutes, state=app.state, match=hot_route)
    return app


def hot_route(path: str) -> Route | None:
    """The prediction routes `serving.asgi` answers itself: ours, MLflow's, KServe v1 and v2."""
    return predict.match(path) or v2.match(path)


def _ensure_indexes(store: PredictionStore, ttl_days: int | None) -> None:
    try:
        store.ensure_indexes(ttl_days)
    except SharedServerError as exc:  # another database owns this nx-27017: say so loudly
        log.error("prediction log: %s", exc)
    except Exception as exc:  # MongoDB down at start: the spool covers writes meanwhile
        log.warning("could not create MongoDB indexes now: %s", exc)
