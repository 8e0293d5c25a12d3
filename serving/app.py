"""The FastAPI app factory: `create_app(settings)` wires holder, logger, metrics and routes.

`uvicorn --factory serving.app:create_app` (what `mlops serve` runs) builds one per worker. The
model is loaded in the lifespan, never at import; the API starts even when the registry or
MongoDB is down and says so on /ready and in 503 answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from lifecycle.core.errors import SharedServerError
from lifecycle.core.settings import Settings, get_settings
from lifecycle.stores.prediction_store import PredictionStore
from serving.asgi.call import Route
from serving.asgi.router import PredictionRoutes
from serving.asgi.traffic import RequestMetrics
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


def _route_path(scope: dict) -> str:
    """FastAPI's matched route template ("unmatched" for a 404)."""
    return getattr(scope.get("route"), "path", None) or "unmatched"


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
    app.add_middleware(RequestMetrics, metrics=metrics, endpoint=_route_path)
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
