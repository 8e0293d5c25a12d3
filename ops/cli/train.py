"""`mlops train`, `mlops promote`, `mlops rollback`."""

from __future__ import annotations

import typer

from lifecycle.core.settings import get_settings


def register(app: typer.Typer) -> None:
    """Add the training and alias commands to `app`."""
    app.command()(train)
    app.command()(promote)
    app.command()(rollback)


def train(
    trials: int | None = typer.Option(
        None, "--trials", "-n", min=1, help="hyperopt trials (MLOPS_TRIALS)."
    ),
    data: str | None = typer.Option(None, "--data", help="data source (MLOPS_DATA_SOURCE)."),
    space: str | None = typer.Option(None, "--space", help="search space: default, fast, stump."),
    seed: int | None = typer.Option(None, "--seed", help="seed for split and search (MLOPS_SEED)."),
) -> None:
    """Run the train-model flow: search, register, and gate the champion alias."""
    settings = get_settings()
    if settings.dask_address:
        # First, before anything heavy is imported: an unreachable scheduler is a one-line
        # error within seconds (lifecycle.training.cluster imports no Prefect).
        from lifecycle.training import cluster

        cluster.check_tracking(settings)
        cluster.probe_scheduler(settings.dask_address)
    from lifecycle.training.search_space import SPACES

    if space is not None and space not in SPACES:
        raise typer.BadParameter(f"expected one of {sorted(SPACES)}", param_hint="--space")
    from lifecycle.data.sources import load_dataset

    # Check the source before Prefect is even imported (importing the flows costs ~9 s of CPU,
    # a temporary server ~10 s more), so a bad source is a one-line error within a second.
    load_dataset(data or settings.data_source, settings.target, settings.task, settings.s3_block)
    from flows.distributed import prefect_api_url
    from flows.train import run_train_flow
    from lifecycle.training.cluster import check_prefect_api

    # Likewise a cluster's Prefect API (without one the flow would start a temporary server).

    check_prefect_api(settings, prefect_api_url())

    result = run_train_flow(
        settings, trials=trials, data_source=data, search_space=space, seed=seed, show_progress=True
    )
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in result.test_metrics.items())
    search = result.search
    typer.echo(f"model {settings.model_name} v{result.version} -> {result.alias}")
    typer.echo(f"  test: {metrics}")
    # The gate's reason ends with the backtest's line (when there was one): printed on its own.
    line = result.backtest.line if result.backtest is not None else None
    typer.echo(f"  gate: {result.reason.removesuffix(f'; {line}')}")
    if line is not None:
        typer.echo(f"  {line}")
    typer.echo(
        f"  search: {len(search.trials)} trials, {search.wall_seconds:.1f} s "
        f"({search.fit_seconds:.1f} s fitting); MLflow run {result.run_id}"
    )
    if settings.dask_address:
        typer.echo(
            f"  cluster: {settings.dask_address}, {len(search.workers)} workers, "
            f"{search.parallel} trials in flight; {search.failed} trials failed, "
            f"{search.retried} retried"
        )


def promote(version: str = typer.Argument(..., help="model version to make champion.")) -> None:
    """Make VERSION the champion; the old champion becomes `previous`."""
    from lifecycle.stores import registry

    old = registry.promote(version)
    name = get_settings().model_name
    suffix = f" (v{old} is now previous)" if old else ""
    typer.echo(f"model {name}: champion -> v{version}{suffix}")


def rollback(
    version: str | None = typer.Option(
        None, "--to", help="version to roll back to (default: previous)."
    ),
) -> None:
    """Move champion back to `previous` (or to --to VERSION)."""
    from lifecycle.stores import registry

    new = registry.rollback(version)
    typer.echo(f"model {get_settings().model_name}: champion -> v{new}")
