"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from serving.deps import HolderDep, MetricsDep
from serving.errors import json_response

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> Response:
    """Liveness: the process answers."""
    return json_response({"status": "ok"})


@router.get("/ready")
async def ready(holder: HolderDep) -> Response:
    """Readiness: 200 once a model is loaded, 503 with the reason until then."""
    model = holder.current
    if model is None:
        return json_response({"ready": False, "reason": holder.reason}, 503)
    return json_response({"ready": True, "model_name": model.name, "model_version": model.version})


@router.get("/metrics")
async def metrics(metrics: MetricsDep) -> Response:
    """Prometheus exposition."""
    return Response(metrics.exposition(), media_type=metrics.content_type)
