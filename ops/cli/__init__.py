"""The `mlops` command. Each area registers its commands from its own module; heavy imports
happen inside the commands, so `mlops --help` is fast."""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from lifecycle.core.errors import LifecycleError

# One module per area; each defines `register(app: typer.Typer) -> None`.
COMMAND_MODULES = (
    "train",
    "serve",
    "report",
    "monitor",
    "operations",
    "stream",
    "cluster",
    "experiment",
    "backtest",
)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="mlops",
        help="Lifecycle: train, serve, report on and monitor a tabular model.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    for name in COMMAND_MODULES:
        importlib.import_module(f"ops.cli.{name}").register(app)
    return app


def main() -> None:
    """Entry point: a LifecycleError becomes a one-line message and exit code 1."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        build_app()()
    except LifecycleError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
