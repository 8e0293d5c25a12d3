"""`mlops experiment`: the state of the live comparison (shadow / canary challenger)."""

from __future__ import annotations

import typer

from lifecycle.core.settings import get_settings


def register(app: typer.Typer) -> None:
    """Add `mlops experiment` to `app`."""
    app.command()(experiment)


def experiment() -> None:
    """The challenger, the live metrics and paired test of the last report, and its decisions."""
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
    typer.echo(
        f"rules: promote with >= {settings.live_min_paired} paired labels and "
        f"p < {settings.live_alpha:g} (auto {str(settings.auto_promote).lower()}); roll back "
        f"after {settings.rollback_after_windows} reports out of bounds "
        f"(auto {str(settings.auto_rollback).lower()})"
    )
    store = PredictionStore.open(settings, "cli")
    try:
        report = store.latest_report(settings.model_name)
    finally:
        store.close()
    comparison = (report or {}).get("experiment")
    if not comparison:
        typer.echo("no live comparison yet: run `mlops report` over a window with labels")
        return
    typer.echo(f"last report, window ending {report['window_end']:%Y-%m-%d %H:%M} UTC:")
    for line in describe(comparison):
        typer.echo(f"  {line}")
    for decision in comparison.get("decisions") or []:
        typer.echo(f"  - decision: {decision['reason']}")
