"""Route dependencies: the app's parts (holder, logger, store) and the API-key checks."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request

from lifecycle.settings import Settings
from serving.errors import ApiError


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


async def require_admin(request: Request) -> None:
    """Admin routes (/reload, /feedback) need the key whenever MLOPS_API_KEY is set."""
    check_key(request.app.state.settings, request.headers)


AdminKey = Annotated[None, Depends(require_admin)]
