"""`mlops serve` (the prediction API under uvicorn) and `mlops mongo` (the local MongoDB-wire
server, nx-27017, in the foreground)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from urllib.parse import urlsplit

import typer


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind (0.0.0.0 for all)."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port of the API."),
    workers: int = typer.Option(1, min=1, max=64, help="uvicorn worker processes."),
    log_level: str = typer.Option("warning", help="uvicorn log level."),
) -> None:
    """Serve predictions from the registry alias (MLOPS_MODEL_ALIAS) with FastAPI + uvicorn."""
    import uvicorn

    from lifecycle.core.settings import get_settings

    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    if workers > 1:
        # Each worker is its own process: prometheus_client keeps values in shared files so
        # /metrics (answered by any one worker) sums all of them. The folder is emptied first,
        # as prometheus_client requires, and handed to the workers through their environment.
        metrics_dir = settings.prometheus_multiproc_dir or settings.home / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        get_settings.cache_clear()
    # MLflow prints a progress bar per model download; the API logs its own line instead.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    typer.echo(f"serving {settings.model_name}@{settings.model_alias} on http://{host}:{port}")
    uvicorn.run(
        "serving.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,  # per-request lines cost throughput; /metrics counts requests
    )


def mongo(
    port: int | None = typer.Option(None, min=1, max=65535, help="Port (default: MONGO_URI's)."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    database: str | None = typer.Option(
        None, help="The one database it holds (default: MLOPS_MONGO_DB); its file is NAME.db."
    ),
) -> None:
    """Run the local MongoDB-wire server (nx-27017) in the foreground; data under MLOPS_HOME.

    It holds one database: nx-27017 keeps every database name in one namespace, so the server
    is claimed for `--database` as soon as it listens, and a Lifecycle process configured with
    another name is refused. For a second database, start a second server on its own port.
    """
    from lifecycle.core.errors import LifecycleError
    from lifecycle.core.settings import get_settings
    from lifecycle.stores.prediction_store import PredictionStore
    from ops.local_servers import nx_command, stop_process, wait_port

    settings = get_settings()
    port = port or urlsplit(settings.mongo_uri).port or 27017
    name = database or settings.mongo_db
    folder = settings.home / "mongo"
    folder.mkdir(parents=True, exist_ok=True)
    command = nx_command(folder / f"{name}.db", port, host)
    typer.echo(
        f"MongoDB wire protocol on mongodb://{host}:{port} (data: {folder / name}.db); it holds "
        f"one database, {name!r}: for another, start a second server with --port and --database"
    )
    proc = subprocess.Popen(command)
    # A SIGTERM (the demo, `make up`) stops the server too, instead of leaving it behind.
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        wait_port(port, 30, proc)
        local = {"mongo_uri": f"mongodb://127.0.0.1:{port}", "mongo_db": name}
        store = PredictionStore.open(settings.model_copy(update=local), "cli")
        try:
            store.claim_server()
        finally:
            store.close()
        code = proc.wait()
    except KeyboardInterrupt:
        stop_process(proc)
        code = proc.returncode
    except LifecycleError as exc:  # claimed for another database already: say so, stop
        stop_process(proc)
        typer.echo(f"error: {exc}", err=True)
        code = 1
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add `serve` and `mongo` to `app`."""
    app.command("serve")(serve)
    app.command("mongo")(mongo)
