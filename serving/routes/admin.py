"""The model resource: GET /model (what is served) and POST /reload (admin: check the alias now)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from serving.deps import AdminKey

router = APIRouter(tags=["model"])


@router.get("/model")
async def model_info(request: Request) -> dict[str, Any]:
    """Name, version, alias, loaded_at, trained_at and test metrics of the served model."""
    return request.app.state.holder.require().describe()


@router.post("/reload")
async def reload(request: Request, _: AdminKey) -> dict[str, Any]:
    """Check the alias now (a version refused earlier is tried again)."""
    holder = request.app.state.holder
    result = await asyncio.to_thread(holder.check, True)
    model = holder.current
    return {
        "result": result,
        "model_version": model.version if model else None,
        "reason": None if model else holder.reason,
    }
