"""The staleness-guard automation definition and its command (`python -m deployments.automations`),
without a Prefect server: what it would create, and that it creates nothing without a webhook."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest
from typer.testing import CliRunner

from lifecycle.core.settings import Settings, get_settings


def test_staleness_guard_definition_expects_completed_train_model_runs() -> None:
    from prefect.events.actions import SendNotification

    from deployments.automations import staleness_guard

    block_id = uuid4()
    automation = staleness_guard(block_id, timedelta(hours=36), deployment="daily")
    trigger = automation.trigger
    assert trigger.posture == "Proactive"
    assert trigger.expect == {"prefect.flow-run.Completed"}
    assert trigger.within == timedelta(hours=36) and trigger.threshold == 1
    related = [spec.root for spec in trigger.match_related]
    assert {"prefect.resource.role": "flow", "prefect.resource.name": "train-model"} in related
    assert {"prefect.resource.role": "deployment", "prefect.resource.name": "daily"} in related
    (action,) = automation.actions
    assert isinstance(action, SendNotification) and action.block_document_id == block_id


def test_staleness_guard_rejects_a_window_prefect_cannot_evaluate() -> None:
    from deployments.automations import staleness_guard

    with pytest.raises(ValueError, match="within: must be at least 10 s"):
        staleness_guard(uuid4(), timedelta(seconds=5))


def test_staleness_guard_is_not_applied_without_a_webhook() -> None:
    from deployments.automations import apply_staleness_guard

    # No server is contacted: with no webhook there is nothing to notify.
    assert apply_staleness_guard(Settings(alert_webhook_url=None)) is None


def test_staleness_guard_command_without_a_webhook_says_so_and_exits_0(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import typer

    from deployments.automations import apply

    monkeypatch.delenv("MLOPS_ALERT_WEBHOOK_URL", raising=False)
    get_settings.cache_clear()
    app = typer.Typer()
    app.command()(apply)
    result = CliRunner().invoke(app, ["--flow", "train-model", "--deployment", "daily"])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "staleness guard not applied: MLOPS_ALERT_WEBHOOK_URL is not set" in result.output


def test_staleness_guard_command_names_the_server_it_cannot_reach(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import typer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.automations import apply

    monkeypatch.setenv("MLOPS_ALERT_WEBHOOK_URL", "http://127.0.0.1:1/hook")
    get_settings.cache_clear()
    app = typer.Typer()
    app.command()(apply)
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:1/api"}):
        result = CliRunner().invoke(app, [])
    get_settings.cache_clear()
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: staleness guard not applied: http://127.0.0.1:1/api: ")
