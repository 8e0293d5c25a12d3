"""`mlops report`: run the `build-reports` flow once for one window."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add `mlops report` to `app`."""

    @app.command("report")
    def report(
        window: str = typer.Option(
            None, "--window", help="Window length, e.g. 3h, 90m, 1d (default MLOPS_REPORT_WINDOW)."
        ),
        end: str = typer.Option(
            None, "--end", help="Window end, ISO 8601 (naive means UTC; default now)."
        ),
    ) -> None:
        """Build the drift + live-quality report of one window and rebuild the index page."""
        from lifecycle.core.settings import get_settings
        from lifecycle.core.times import parse_duration, parse_time

        label = window or get_settings().report_window
        # Checked here so a typo fails in a second, before Prefect starts.
        parse_duration(label, "--window" if window else "MLOPS_REPORT_WINDOW")
        end_time = parse_time(end, "--end")

        from flows.report import build_reports

        result = build_reports(window=label, end=end_time)
        typer.echo(result["message"])
        if result.get("url"):
            typer.echo(f"report: {result['url']}")
            typer.echo(f"files:  {result['html_path']}")
