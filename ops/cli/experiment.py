"""`mlops experiment`: the state of the live comparison (shadow / canary challenger)."""

from __future__ import annotations

import typer

from lifecycle.core.settings import get_settings


def register(app: typer.Typer) -> None:
    """Add `mlops experiment` to `app`."""
    app.command()(experiment)


def experiment() -> None:
    """The challenger, its sequential test, the last report's live comparison and decisions."""
    from lifecycle.decisions.live_test import LiveExperiment, summary
    from lifecycle.stores import registry
    from lifecycle.stores.prediction_store import PredictionStore
    from reporting.comparison import describe

    settings = get_settings()
    aliases = registry.aliases(settings)
    shadow = settings.shadow_alias or "off"
    typer.echo(
        f"model {settings.model_name}: champion v{aliases.get(registry.CHAMPION, '-')}, "
        f"challenger v{aliases.get(registry.CHALLENGER, '-')}; shadow alias {shadow}, "
        f"canary {settings.canary_percent:g} %"
    )
    threshold = 1 / settings.live_alpha
    typer.echo(
        f"rules: sequential test, promote when the likelihood ratio for better reaches "
        f"{threshold:g} (auto {str(settings.auto_promote).lower()}), stop the challenger when "
        f"the one for worse does; roll back after {settings.rollback_after_windows} reports "
        f"whose live interval is wholly out of bounds (auto "
        f"{str(settings.auto_rollback).lower()})"
    )
    store = PredictionStore.open(settings, "cli")
    try:
        running = list(
            store.experiments.find({"model_name": settings.model_name})
            .sort("updated_at", -1)
            .limit(5)
        )
        report = store.latest_report(settings.model_name)
    finally:
        store.close()
    typer.echo("experiments (newest first):" if running else "no experiment yet")
    for document in running:
        typer.echo(f"  - {summary(LiveExperiment.from_document(document))}")
    comparison = (report or {}).get("experiment")
    if not comparison:
        typer.echo("no live comparison yet: run `mlops report` over a window with labels")
        return
    typer.echo(f"last report, window ending {report['window_end']:%Y-%m-%d %H:%M} UTC:")
    for line in describe(comparison):
        typer.echo(f"  {line}")
    for decision in comparison.get("decisions") or []:
        typer.echo(f"  - decision: {decision['reason']}")
