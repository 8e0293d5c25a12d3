"""`mlops stream` (the Kinesis consumer, in the foreground) and `mlops kinesis` (a local Kinesis
endpoint, moto_server, with the three streams created)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

LOCAL_KEYS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


def stream(
    wait: float = typer.Option(
        0.0, "--wait", min=0, help="seconds to wait for the Kinesis endpoint and streams."
    ),
    create: bool = typer.Option(
        False, "--create", help="create the three streams when missing (local or LocalStack)."
    ),
    metrics_host: str = typer.Option(
        "127.0.0.1", "--metrics-host", help="interface of /metrics (0.0.0.0 in a container)."
    ),
) -> None:
    """Predict Kinesis records from MLOPS_STREAM_IN into MLOPS_STREAM_OUT until SIGTERM."""
    import logging

    from lifecycle.core.settings import get_settings
    from serving.stream.service import serve

    logging.getLogger("serving").setLevel(logging.INFO)
    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    port = settings.stream_metrics_port
    where = f"; metrics on http://{metrics_host}:{port}/metrics" if port else ""
    typer.echo(
        f"streaming {settings.stream_in} -> {settings.stream_out} (dead letters: "
        f"{settings.stream_dlq}) with {settings.model_name}@{settings.model_alias}{where}"
    )
    consumer = serve(settings, wait_seconds=wait, create=create, metrics_host=metrics_host)
    typer.echo(f"stopped after {consumer.batches} batches; checkpoints written")


def kinesis(
    port: int = typer.Option(4567, "--port", min=1, max=65535, help="TCP port of the endpoint."),
    host: str = typer.Option("127.0.0.1", "--host", help="interface to bind."),
    shards: int = typer.Option(2, "--shards", min=1, help="shards of each stream created."),
) -> None:
    """Run a local Kinesis endpoint (moto_server) in the foreground with the three streams."""
    from lifecycle.core.settings import get_settings
    from ops.local_servers import stop_process, wait_port
    from serving.stream.kinesis import ensure_streams, kinesis_client

    settings = get_settings()
    binary = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    if not Path(binary).exists():
        raise typer.BadParameter("moto_server is not installed: pip install 'moto[server]'")
    proc = subprocess.Popen([binary, "-H", host, "-p", str(port)], stderr=subprocess.DEVNULL)
    signal.signal(signal.SIGTERM, _interrupt)  # honcho and `kill` stop it like Ctrl-C does
    try:
        wait_port(port, 30, proc)
        url = f"http://{host}:{port}"
        # moto accepts any credentials and region; none of the user's are needed or sent.
        client = kinesis_client(settings, url, region_name="us-east-1", **LOCAL_KEYS)
        names = [settings.stream_in, settings.stream_out, settings.stream_dlq]
        ensure_streams(client, names, shards)
        typer.echo(f"Kinesis (moto) on {url}: streams {', '.join(names)} ({shards} shards each)")
        typer.echo(
            f"  export AWS_ENDPOINT_URL_KINESIS={url} AWS_DEFAULT_REGION=us-east-1 "
            "AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local"
        )
        code = proc.wait()
    except KeyboardInterrupt:
        code = 0
    finally:
        stop_process(proc)
    raise typer.Exit(code)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def register(app: typer.Typer) -> None:
    """Add `stream` and `kinesis` to `app`."""
    app.command("stream")(stream)
    app.command("kinesis")(kinesis)


def simulate_into_stream(
    stream_name: str,
    rate: float,
    duration: float,
    schedule: Any,
    batch: int,
    seed: int,
    tick: Callable[..., None],
) -> int:
    """`mlops simulate --kinesis STREAM`: the simulator's traffic into a stream; exit code."""
    from lifecycle.core.settings import get_settings
    from ops.simulation import simulate_kinesis
    from serving.stream.kinesis import StreamError, describe_failure, kinesis_client

    client = kinesis_client(get_settings())
    try:
        stats = simulate_kinesis(client, stream_name, rate, duration, schedule, batch, seed, tick)
    except Exception as exc:  # botocore: a missing stream, no endpoint, no credentials
        raise StreamError(f"stream {stream_name!r}: {describe_failure(exc)}") from exc
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    typer.echo(
        f"put {stats.requests} records ({stats.rows} rows) into {stream_name}: "
        f"{stats.ok} accepted, {stats.failed} refused"
    )
    return 0 if stats.ok else 1
