"""`mlops simulate`, `mlops predict-batch`, `mlops status`, `mlops demo`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from lifecycle.core.settings import get_settings


def register(app: typer.Typer) -> None:
    """Add the operations commands to `app`."""
    app.command()(simulate)
    app.command("predict-batch")(predict_batch)
    app.command()(status)
    app.command()(demo)
    app.command()(up)


def simulate(
    url: str = typer.Option("http://127.0.0.1:8000", "--url", help="base URL of the API."),
    rate: float = typer.Option(20.0, "--rate", min=0.1, help="requests per second."),
    duration: float = typer.Option(30.0, "--duration", min=0.1, help="seconds to run."),
    drift: str = typer.Option(
        "0", "--drift", help="drift: a number, or a schedule 'seconds:drift,...' e.g. 0:0,30:0.8."
    ),
    concept: str = typer.Option(
        "0",
        "--concept",
        help="concept drift (the label model changes): a number or a schedule, e.g. 0:0,30:1.0.",
    ),
    feedback_share: float = typer.Option(
        0.3, "--feedback-share", min=0, max=1, help="share of predictions that get ground truth."
    ),
    feedback_delay: float = typer.Option(
        5.0, "--feedback-delay", min=0, help="seconds before a label arrives."
    ),
    batch: int = typer.Option(1, "--batch", min=1, help="rows per request."),
    seed: int = typer.Option(1000, "--seed", help="seed of the synthetic customers."),
    kinesis: str | None = typer.Option(
        None, "--kinesis", help="put the records into this Kinesis stream instead (no labels)."
    ),
) -> None:
    """Send synthetic churn traffic to the API, with drift and delayed feedback."""
    import asyncio

    from ops.simulation import simulate as run

    schedule, concept_schedule = _schedule(drift, "--drift"), _schedule(concept, "--concept")
    tty = sys.stderr.isatty()

    def tick(stats, elapsed: float, level: float) -> None:
        end = "\r" if tty else "\n"
        sys.stderr.write(stats.line(elapsed, level) + end)
        sys.stderr.flush()

    if kinesis:
        from ops.cli.stream import simulate_into_stream

        raise typer.Exit(simulate_into_stream(kinesis, rate, duration, schedule, batch, seed, tick))

    stats = asyncio.run(
        run(
            url,
            rate,
            duration,
            schedule,
            feedback_share,
            feedback_delay,
            batch,
            seed,
            get_settings().api_key,
            on_tick=tick,
            concept=concept_schedule,
        )
    )
    if tty:
        sys.stderr.write("\n")
    _print_summary(stats)


def _print_summary(stats) -> None:  # stats: ops.simulation.SimulationStats
    """The one-line summary of a simulation; exit 1 when no request succeeded."""
    versions = " -> ".join(f"v{v}" for v in stats.version_order) or "none"
    acc = f"{stats.accuracy:.4f}" if stats.accuracy is not None else "n/a"
    typer.echo(
        f"sent {stats.requests} requests ({stats.rows} rows): "
        f"{stats.ok} ok, {stats.failed} failed; "
        f"versions {versions}; {stats.feedback_sent} labels sent; accuracy on labelled {acc}"
    )
    if stats.ok == 0:
        raise typer.Exit(1)


def _schedule(text: str, option: str):  # -> ops.simulation.DriftSchedule
    """Parse a --drift / --concept schedule; a bad one is a usage error naming the option."""
    from ops.simulation import DriftSchedule

    try:
        return DriftSchedule.parse(text)
    except ValueError as exc:
        message = str(exc).replace("drift", option.removeprefix("--"))
        raise typer.BadParameter(message, param_hint=option) from None


def predict_batch(
    input: Path = typer.Option(..., "--input", help="CSV or Parquet file of raw records."),
    output: Path = typer.Option(..., "--output", help="where to write scores (.csv or .parquet)."),
    version: str | None = typer.Option(
        None, "--version", help="model version (default: champion)."
    ),
) -> None:
    """Score a file with the registered model, streaming it in chunks."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from lifecycle.model import batch
    from lifecycle.stores.registry_loading import load_predictor

    settings = get_settings()
    columns, parquet_rows = batch.input_columns(input)
    batch.file_format(output, "output")
    resolved, predictor = load_predictor(version)
    batch.check_columns(columns, predictor, input)
    total = parquet_rows if parquet_rows is not None else batch.count_csv_rows(input)
    progress = Progress(
        TextColumn(f"[bold]scoring with v{resolved}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        disable=not sys.stderr.isatty(),
    )
    with progress:
        task = progress.add_task("rows", total=total)
        result = batch.score_file(
            predictor,
            resolved,
            input,
            output,
            lambda n: progress.advance(task, n),
            unseen_category=settings.unseen_category,
        )
    typer.echo(f"scored {result.rows} rows with {settings.model_name} v{resolved} -> {output}")
    if result.unseen:  # MLOPS_UNSEEN_CATEGORY=missing
        counts = ", ".join(f"{name} {n}" for name, n in sorted(result.unseen.items()))
        typer.echo(f"unseen categories scored as missing (column `unseen`): {counts}")


def status() -> None:
    """Champion and its age, last training and report, recent predictions, the journal."""
    from ops.status import collect, render

    settings = get_settings()
    for line in render(collect(settings), settings):
        typer.echo(line)


def demo(
    trials: int = typer.Option(10, "--trials", min=1, help="trials per training run."),
    keep: bool = typer.Option(False, "--keep", help="keep MLOPS_HOME/demo from the last run."),
) -> None:
    """Run the whole loop once, locally and finitely, then print where to look."""
    from ops.demo import run_demo

    raise typer.Exit(run_demo(trials=trials, keep=keep))


def up(
    api_port: int = typer.Option(8000, "--api-port", help="API port."),
    mlflow_port: int = typer.Option(5000, "--mlflow-port", help="MLflow UI port."),
    prefect_port: int = typer.Option(4200, "--prefect-port", help="Prefect UI/API port."),
    mongo_port: int = typer.Option(27017, "--mongo-port", help="MongoDB-wire server port."),
    nginx_port: int = typer.Option(8088, "--nginx-port", help="reports (nginx) port."),
) -> None:
    """The local stack in the foreground (Prefect, worker, MLflow, MongoDB, API, nginx)."""
    from ops.stack import Ports, run_stack

    raise typer.Exit(run_stack(Ports(api_port, mlflow_port, prefect_port, mongo_port, nginx_port)))
