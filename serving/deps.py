"""Route dependencies as named `Annotated` aliases (as in full-stack-fastapi-template's
`deps.py`): the app's parts (settings, holder, store, logger, metrics) and the API-key check, so
each route says what it uses in its signature.

The prediction routes are a plain ASGI chain (`serving.asgi`), outside FastAPI's
dependency solving for speed; its `KeyAuth` piece calls `check_key`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request

from lifecycle.core.settings import Settings
from lifecycle.stores.prediction_store import PredictionStore
from serving.errors import ApiError
from serving.holder import ModelHolder
from serving.logger import PredictionLogger
from serving.metrics import ServingMetrics


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a client sent: `X-API-Key: K` or `Authorization: Bearer K`."""
    key = headers.get("x-api-key")
    if key:
        return key
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return None


def check_key(settings: Settings, headers: Mapping[str, str], mlflow_format: bool = False) -> None:
    """401 unless the configured key was presented (no key configured: open).

    `headers` maps lower-case names to values (Starlette's Headers or a plain dict).
    """
    expected = settings.api_key
    if not expected:
        return
    key = presented_key(headers)
    if key is None or not secrets.compare_digest(key.encode(), expected.encode()):
        error = ApiError(
            401,
            "missing or wrong API key: send it as X-API-Key or Authorization: Bearer",
            "X-API-Key",
            mlflow_format=mlflow_format,
        )
        error.headers["WWW-Authenticate"] = "Bearer"
        raise error


def get_settings(request: Request) -> Settings:
    """The settings the app was built with (`create_app(settings)`), not the environment's."""
    return request.app.state.settings


def get_holder(request: Request) -> ModelHolder:
    return request.app.state.holder


def get_store(request: Request) -> PredictionStore:
    """The MongoDB store, opened in the lifespan."""
    store = request.app.state.store
    if store is None:  # only outside the lifespan (an app that was never started)
        raise ApiError(503, "the prediction store is not open: the app has not started")
    return store


def get_logger(request: Request) -> PredictionLogger | None:
    """The prediction logger; None when MLOPS_LOG_PREDICTIONS=false."""
    return request.app.state.logger


def get_metrics(request: Request) -> ServingMetrics:
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
HolderDep = Annotated[ModelHolder, Depends(get_holder)]
StoreDep = Annotated[PredictionStore, Depends(get_store)]
LoggerDep = Annotated[PredictionLogger | None, Depends(get_logger)]
MetricsDep = Annotated[ServingMetrics, Depends(get_metrics)]


async def require_admin(settings: SettingsDep, request: Request) -> None:
    """Admin routes (/reload, /feedback) need the key whenever MLOPS_API_KEY is set."""
    check_key(settings, request.headers)


AdminKey = Annotated[None, Depends(require_admin)]
