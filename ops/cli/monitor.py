"""`mlops exporter`, `mlops alertmanager-config`, `mlops prometheus-config`: monitoring commands.

`monitoring` is imported inside the commands, so `mlops --help` stays fast.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the monitoring commands to `app`."""
    app.command()(exporter)
    app.command("alertmanager-config")(alertmanager_config)
    app.command("prometheus-config")(prometheus_config)


def exporter(
    port: int = typer.Option(9108, min=0, max=65535, help="Port for /metrics."),
    host: str = typer.Option("127.0.0.1", help="Address to bind (0.0.0.0 in a container)."),
    cache_seconds: float = typer.Option(
        10.0, min=0.0, help="Re-read the registry and reports at most this often."
    ),
    budget_seconds: float = typer.Option(
        2.0, min=0.1, help="Longest a scrape waits for a slow store before answering."
    ),
) -> None:
    """Serve registry and report figures (model age, test/live metrics, drift) for scrapes."""
    from monitoring.exporter import serve_exporter

    try:
        server = serve_exporter(
            host, port, cache_seconds=cache_seconds, budget_seconds=budget_seconds
        )
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot listen on {host}:{port}: {exc.strerror}", param_hint="--port"
        ) from None
    typer.echo(f"exporter listening on {server.url}")
    try:
        _wait_for_stop()
    finally:
        server.close()


def _wait_for_stop() -> None:
    """Block until Ctrl-C or SIGTERM (docker stop, honcho), which end the command alike."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()


def alertmanager_config(
    output: Path = typer.Option(..., "--output", "-o", help="Where to write alertmanager.yml."),
) -> None:
    """Render monitoring/alertmanager/alertmanager.yml with the alert and SMTP settings."""
    from lifecycle.core.settings import get_settings
    from monitoring.config import alertmanager_config as render
    from monitoring.config import dump_yaml

    settings = get_settings()
    dump_yaml(render(settings), output)
    channels = [
        name
        for name, value in (
            ("webhook", settings.alert_webhook_url),
            ("email", settings.alert_email_to),
        )
        if value
    ]
    typer.echo(f"wrote {output} (channels: {', '.join(channels) or 'none configured'})")


def _check_host_port(value: str, option: str) -> None:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise typer.BadParameter(f"expected host:port, got {value!r}", param_hint=option)


def prometheus_config(
    output: Path = typer.Option(..., "--output", "-o", help="Where to write prometheus.yml."),
    api: str = typer.Option("127.0.0.1:8000", help="host:port of the API."),
    exporter_target: str = typer.Option(
        "127.0.0.1:9108", "--exporter", help="host:port of the exporter."
    ),
    alertmanager: str = typer.Option("127.0.0.1:9093", help="host:port of Alertmanager."),
    stream: str = typer.Option(
        "",
        help="host:port of `mlops stream`'s /metrics (e.g. 127.0.0.1:9110); empty: no stream job.",
    ),
) -> None:
    """Render monitoring/prometheus/prometheus.yml for Prometheus on the host (not Compose)."""
    from monitoring.config import dump_yaml
    from monitoring.config import prometheus_config as render

    _check_host_port(api, "--api")
    _check_host_port(exporter_target, "--exporter")
    _check_host_port(alertmanager, "--alertmanager")
    if stream:
        _check_host_port(stream, "--stream")
    config = render(
        [api], [exporter_target], [alertmanager], stream_targets=[stream] if stream else None
    )
    dump_yaml(config, output)
    typer.echo(f"wrote {output}")
