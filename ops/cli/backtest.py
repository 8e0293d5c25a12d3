"""`mlops backtest`: replay a registered version on the prediction log."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add `mlops backtest` to `app`."""

    @app.command("backtest")
    def backtest(
        version: str = typer.Argument(..., help="Version number or alias to replay."),
        window: str = typer.Option("14d", "--window", help="Window length, e.g. 14d, 3h."),
        against: str = typer.Option(
            None,
            "--against",
            help="Version or alias to re-score beside it (default: the logged answers).",
        ),
        end: str = typer.Option(
            None, "--end", help="Window end, ISO 8601 (naive means UTC; default now)."
        ),
    ) -> None:
        """Re-score the window's logged requests with VERSION: disagreement, paired counts on
        labelled rows, label-free estimates on the rest; stored in `backtests`."""
        from lifecycle.core.times import parse_duration, parse_time

        parse_duration(window, "--window")  # a typo fails before Prefect starts
        end_time = parse_time(end, "--end")

        from flows.backtest import backtest as run

        result = run(version=version, window=window, against=against, end=end_time)
        typer.echo(result["summary"])
