"""Prefect automations: the staleness guard, for users who run no Prometheus.

A proactive trigger expects `prefect.flow-run.Completed` from a deployment of the `train-model`
flow within MLOPS_STALE_AFTER_HOURS; when none arrives, a SendNotification action posts to the
Slack-compatible webhook MLOPS_ALERT_WEBHOOK_URL through a CustomWebhookNotificationBlock. (The
`triggers:` of prefect.yaml can only run their own deployment, so notifications need this API.)
It sends no e-mail: none of Prefect's notification blocks speaks SMTP (prefect-email has
credentials for a task, not a notification block), so e-mail is Alertmanager's job.

Apply against the server in PREFECT_API_URL (`make deploy` does this):

    python -m deployments.automations [--flow NAME] [--deployment NAME]   # from the repo root

Re-applying replaces the automation of the same name, so it is idempotent.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import httpx
import typer
from prefect.automations import Automation
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.settings import PREFECT_API_URL

from lifecycle.core.settings import Settings, get_settings

GUARD_NAME = "lifecycle-model-stale"
WEBHOOK_BLOCK_NAME = "lifecycle-alert-webhook"
TRAIN_FLOW = "train-model"
# Proactive triggers are evaluated every 5 s and need a window of at least 10 s (Prefect 3.8).
MIN_WITHIN = timedelta(seconds=10)


def save_webhook_block(url: str, name: str = WEBHOOK_BLOCK_NAME) -> UUID:
    """Store the webhook as a notification block; Slack-style `{"text": ...}` JSON body."""
    block = CustomWebhookNotificationBlock(
        name=name,
        url=url,
        method="POST",
        json_data={"text": "{{subject}}\n{{body}}"},
    )
    return block.save(name, overwrite=True)


def staleness_guard(
    block_document_id: UUID,
    within: timedelta,
    flow_name: str = TRAIN_FLOW,
    deployment: str = "*",
    name: str = GUARD_NAME,
) -> Automation:
    """The automation: notify when no run of a `flow_name` deployment completes in `within`.

    `deployment` is a deployment name (`daily`) or `*` for any deployment of the flow; runs
    started outside a deployment (a developer's local `train`) do not count.
    """
    if within < MIN_WITHIN:
        raise ValueError(f"within: must be at least {MIN_WITHIN.total_seconds():.0f} s")
    hours = within.total_seconds() / 3600
    return Automation(
        name=name,
        description=f"No completed {flow_name} run within {hours:g} h: the champion is stale.",
        trigger=EventTrigger(
            posture=Posture.Proactive,
            match={"prefect.resource.id": "prefect.flow-run.*"},
            # Every specification must match one of the event's related resources.
            match_related=[
                {"prefect.resource.role": "flow", "prefect.resource.name": flow_name},
                {"prefect.resource.role": "deployment", "prefect.resource.name": deployment},
            ],
            expect={"prefect.flow-run.Completed"},
            threshold=1,
            within=within,
        ),
        actions=[
            SendNotification(
                block_document_id=block_document_id,
                subject=f"[Lifecycle] ModelStale: no {flow_name} run completed in {hours:g} h",
                body=(
                    f"No run of the {flow_name} deployment ({deployment}) completed within "
                    f"{hours:g} h, so the champion model is getting stale. Check the flow runs "
                    "and the worker (monitoring/README.md#modelstale). "
                    "Automation: {{ automation.name }}."
                ),
            )
        ],
    )


def apply_staleness_guard(
    settings: Settings | None = None,
    within: timedelta | None = None,
    webhook_url: str | None = None,
    flow_name: str = TRAIN_FLOW,
    deployment: str = "*",
    name: str = GUARD_NAME,
) -> UUID | None:
    """Create (or replace) the guard on the server in PREFECT_API_URL; returns its id.

    Returns None, creating nothing, when no webhook is configured (MLOPS_ALERT_WEBHOOK_URL).
    """
    settings = settings or get_settings()
    url = webhook_url or settings.alert_webhook_url
    if not url:
        return None
    within = within or timedelta(hours=settings.stale_after_hours)
    # One block per guard name, so guards of different models can notify different hooks.
    block_name = WEBHOOK_BLOCK_NAME if name == GUARD_NAME else f"{name}-webhook"
    block_id = save_webhook_block(url, block_name)
    automation = staleness_guard(block_id, within, flow_name, deployment, name)
    with get_client(sync_client=True) as client:
        for existing in client.read_automations_by_name(name):
            client.delete_automation(existing.id)
    return automation.create().id


def apply(
    flow: str = typer.Option(TRAIN_FLOW, help="Flow whose completed runs keep the model fresh."),
    deployment: str = typer.Option("*", help="Deployment name of that flow, or * for any."),
) -> None:
    """Apply Lifecycle's Prefect automations (the staleness guard) to PREFECT_API_URL."""
    try:
        automation_id = apply_staleness_guard(flow_name=flow, deployment=deployment)
    except (httpx.HTTPError, ValueError) as exc:  # server unreachable or refusing; bad window
        where = PREFECT_API_URL.value() or "PREFECT_API_URL (unset)"
        typer.secho(f"error: staleness guard not applied: {where}: {exc}", err=True, fg="red")
        raise typer.Exit(1) from None
    if automation_id is None:
        typer.echo("staleness guard not applied: MLOPS_ALERT_WEBHOOK_URL is not set")
    else:
        typer.echo(f"staleness guard {GUARD_NAME} applied ({automation_id})")


def main() -> None:
    """`python -m deployments.automations`: one command, so no sub-command name is needed."""
    typer.run(apply)


if __name__ == "__main__":
    main()
