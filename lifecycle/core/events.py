"""Prefect events the loop emits and reacts to: their names and resources live here only.

Flows emit them (`emit`), automations in `deployments/` match them (`DRIFT_DETECTED`,
`MODEL_RESOURCE_PATTERN`). Later features add their names here, beside these.
"""

from __future__ import annotations

from typing import Any

DRIFT_DETECTED = "lifecycle.drift.detected"
# A report's realized metric fell outside its label-free estimate (reporting.estimate).
CONCEPT_DRIFT_SUSPECTED = "lifecycle.concept-drift.suspected"
CHALLENGER_PROMOTED = "lifecycle.challenger.promoted"
CHAMPION_ROLLED_BACK = "lifecycle.champion.rolled-back"
CHALLENGER_STOPPED = "lifecycle.challenger.stopped"  # the live test found it worse

MODEL_RESOURCE_PREFIX = "lifecycle.model."
MODEL_RESOURCE_PATTERN = f"{MODEL_RESOURCE_PREFIX}*"  # what an automation matches on
MODEL_VERSION_LABEL = "lifecycle.model.version"


def model_resource(model_name: str, model_version: str | None = None) -> dict[str, str]:
    """The Prefect resource of a registered model (and, when given, of one version)."""
    resource = {
        "prefect.resource.id": f"{MODEL_RESOURCE_PREFIX}{model_name}",
        "prefect.resource.name": model_name,
    }
    if model_version is not None:
        resource[MODEL_VERSION_LABEL] = str(model_version)
    return resource


def emit(event: str, model_name: str, model_version: str | None, payload: dict[str, Any]) -> Any:
    """Emit `event` about a model through Prefect (inside a flow run, or to PREFECT_API_URL)."""
    from prefect.events import emit_event

    return emit_event(
        event=event, resource=model_resource(model_name, model_version), payload=payload
    )
