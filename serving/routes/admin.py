"""The model resource: GET /model (what is served) and POST /reload (admin: check the alias now)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from serving.deps import AdminKey, HolderDep

router = APIRouter(tags=["model"])


@router.get("/model")
async def model_info(holder: HolderDep) -> dict[str, Any]:
    """Name, version, alias, loaded_at, trained_at and test metrics of the served model, and
    when the alias was last checked."""
    checked_at = holder.checked_at.isoformat() if holder.checked_at else None
    return {**holder.require().describe(), "checked_at": checked_at}


@router.post("/reload")
async def reload(holder: HolderDep, _: AdminKey) -> dict[str, Any]:
    """Check the alias now (a version refused earlier is tried again)."""
    result = await asyncio.to_thread(holder.check, True)
    model = holder.current
    return {
        "result": result,
        "model_version": model.version if model else None,
        "reason": None if model else holder.reason,
    }
