"""`python -m reporting.nginx [--port 8088] [--host H] [--check]`: render the config for the
settings' reports dir under MLOPS_HOME/nginx and run nginx in the foreground (what `make up`
starts)."""

from __future__ import annotations

import os
import shutil
import subprocess

import typer

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def serve(
    port: int = typer.Option(8088, "--port", help="Port nginx listens on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address nginx listens on."),
    check: bool = typer.Option(
        False, "--check", help="Only test the rendered config (nginx -t), then exit."
    ),
) -> None:
    """Serve the reports dir (index page, reports) with our nginx config."""
    from lifecycle.core.settings import get_settings
    from reporting.nginx import write_config

    binary = shutil.which("nginx") or shutil.which("/usr/sbin/nginx")
    if binary is None:
        typer.echo("error: nginx is not installed (apt-get install nginx)", err=True)
        raise typer.Exit(1)
    settings = get_settings()
    config = write_config(settings.reports_dir, settings.home / "nginx", port, host)
    command = config.command(binary)
    if check:
        raise typer.Exit(subprocess.run([*command[:-2], "-t"]).returncode)
    typer.echo(f"nginx: serving {settings.reports_dir} on http://{host}:{port}/")
    os.execv(binary, command)  # nginx replaces us, so Ctrl-C and supervisors reach it directly


if __name__ == "__main__":
    app()
