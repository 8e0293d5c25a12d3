"""The optional drift → retrain automation: when a report emits `lifecycle.drift.detected` (or
`lifecycle.concept-drift.suspected`: its labels contradicted the label-free estimate), run
the `train-model/daily` deployment now.

Off by default; `MLOPS_RETRAIN_ON_DRIFT=true` switches it on at the next `make deploy`, and
`false` removes it again. Apply against the server in PREFECT_API_URL:

    python -m deployments.retrain            # from the repository root, after `prefect deploy`
"""

from __future__ import annotations

import sys
from datetime import timedelta
from uuid import UUID

from prefect.automations import Automation
from prefect.client.orchestration import get_client
from prefect.events.actions import RunDeployment
from prefect.events.schemas.automations import EventTrigger, Posture

from lifecycle.core import events
from lifecycle.core.settings import Settings, get_settings

NAME = "lifecycle-retrain-on-drift"
TRAIN_DEPLOYMENT = "train-model/daily"


def retrain_on_drift(deployment_id: UUID, name: str = NAME) -> Automation:
    """Reactive: the first drift (or suspected concept drift) event runs the training
    deployment with its defaults."""
    return Automation(
        name=name,
        description=f"Run {TRAIN_DEPLOYMENT} when a report says the inputs drifted.",
        trigger=EventTrigger(
            expect={events.DRIFT_DETECTED, events.CONCEPT_DRIFT_SUSPECTED},
            match={"prefect.resource.id": events.MODEL_RESOURCE_PATTERN},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[RunDeployment(source="selected", deployment_id=deployment_id, parameters={})],
    )


def apply_retrain_on_drift(settings: Settings | None = None, name: str = NAME) -> UUID | None:
    """Create (or replace) the automation when enabled; delete it when not. Returns its id."""
    settings = settings or get_settings()
    with get_client(sync_client=True) as client:
        for existing in client.read_automations_by_name(name):
            client.delete_automation(existing.id)
        if not settings.retrain_on_drift:
            return None
        deployment = client.read_deployment_by_name(TRAIN_DEPLOYMENT)
    return retrain_on_drift(deployment.id, name).create().id


def main() -> int:
    automation_id = apply_retrain_on_drift()
    if automation_id is None:
        print("retrain-on-drift automation off (MLOPS_RETRAIN_ON_DRIFT is not true)")
    else:
        print(f"retrain-on-drift automation {NAME} applied ({automation_id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
