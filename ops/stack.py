"""`make up`: the local stack in the foreground, run by honcho from a generated Procfile.

    prefect  Prefect server (UI + API)                 :4200
    worker   applies the deployments (make deploy), starts a first training run when there is
             no champion yet, then runs a process worker on the `lifecycle` pool
    mlflow   MLflow tracking server + UI on the same sqlite store and artifacts   :5000
    mongo    nx-27017, the local MongoDB-wire server    :27017
    api      the serving API                            :8000
    nginx    the reports, when nginx is installed       :8088

Honcho starts every process in its own session and stops each whole process group on Ctrl-C
(SIGTERM, then SIGKILL after 5 s), so nothing is left behind.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from lifecycle.settings import Settings, get_settings
from ops.local_servers import wait_http

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Ports:
    api: int = 8000
    mlflow: int = 5000
    prefect: int = 4200
    mongo: int = 27017
    nginx: int = 8088


def urls(ports: Ports, with_nginx: bool) -> dict[str, str]:
    out = {
        "API (docs)": f"http://127.0.0.1:{ports.api}/docs",
        "API metrics": f"http://127.0.0.1:{ports.api}/metrics",
        "MLflow UI": f"http://127.0.0.1:{ports.mlflow}",
        "Prefect UI": f"http://127.0.0.1:{ports.prefect}",
        "MongoDB": f"mongodb://127.0.0.1:{ports.mongo}",
    }
    if with_nginx:
        out["Reports"] = f"http://127.0.0.1:{ports.nginx}/"
    return out


def environment(settings: Settings, ports: Ports) -> dict[str, str]:
    """What every process of the stack sees, on top of the caller's environment."""
    return {
        "MLOPS_HOME": str(settings.home),
        "MONGO_URI": f"mongodb://127.0.0.1:{ports.mongo}",
        "MLOPS_REPORTS_URL": f"http://127.0.0.1:{ports.nginx}",
        "PREFECT_API_URL": f"http://127.0.0.1:{ports.prefect}/api",
        "PREFECT_HOME": str(settings.home / "prefect"),
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(ports.prefect),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        # The worker's health server would otherwise listen on 0.0.0.0:8080.
        "PREFECT_WORKER_WEBSERVER_HOST": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
    }


def procfile(settings: Settings, ports: Ports, with_nginx: bool) -> str:
    py, mlops = shlex.quote(str(BIN / "python")), shlex.quote(str(BIN / "mlops"))
    artifacts = settings.artifacts_dir.as_uri()
    lines = {
        "prefect": f"{shlex.quote(str(BIN / 'prefect'))} server start",
        "worker": f"{py} -m ops.stack worker",
        "mlflow": (
            f"{shlex.quote(str(BIN / 'mlflow'))} server --backend-store-uri "
            f"{shlex.quote(settings.mlflow_tracking_uri)} --default-artifact-root "
            f"{shlex.quote(artifacts)} --host 127.0.0.1 --port {ports.mlflow}"
        ),
        "mongo": f"{mlops} mongo --port {ports.mongo}",
        "api": f"{mlops} serve --port {ports.api}",
    }
    if with_nginx:
        lines["nginx"] = f"{py} -m reporting.nginx --port {ports.nginx}"
    return "".join(f"{name}: {command}\n" for name, command in lines.items())


def nginx_installed() -> bool:
    return shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists()


def run_stack(ports: Ports) -> int:
    """Write the Procfile and replace this process with honcho (Ctrl-C reaches it directly)."""
    from lifecycle import registry

    settings = get_settings()
    # Create the MLflow tables and experiment now: the API and the MLflow server would
    # otherwise both migrate a fresh sqlite store at once, and one of them dies.
    registry.configure(settings)
    with_nginx = nginx_installed()
    path = settings.home / "Procfile"
    path.write_text(procfile(settings, ports, with_nginx))
    env = {**os.environ, **environment(settings, ports)}
    print("Lifecycle local stack (Ctrl-C stops all of it):", flush=True)
    for name, url in urls(ports, with_nginx).items():
        print(f"  {name:<12} {url}", flush=True)
    if not with_nginx:
        print(
            "  Reports      nginx is not installed: `sudo apt-get install nginx` to serve "
            f"{settings.reports_dir} on :{ports.nginx}",
            flush=True,
        )
    honcho = str(BIN / "honcho")
    os.execve(honcho, [honcho, "-f", str(path), "-d", str(ROOT), "start"], env)
    return 0  # not reached


def worker_main() -> int:
    """The `worker` process: deploy, bootstrap a first champion, then poll the work pool."""
    api = os.environ["PREFECT_API_URL"]
    try:
        wait_http(f"{api}/health", 120)
    except TimeoutError:
        print(f"Prefect server at {api} did not become healthy", file=sys.stderr)
        return 1
    if subprocess.run([sys.executable, "-m", "deployments"], cwd=ROOT).returncode != 0:
        return 1
    _first_training()
    print("stack ready: deployments applied, worker polling pool 'lifecycle'", flush=True)
    prefect = str(BIN / "prefect")
    os.execv(prefect, [prefect, "worker", "start", "--pool", "lifecycle"])
    return 0  # not reached


def _first_training() -> None:
    """No champion yet: Quick-run train-model/daily so the API has something to serve."""
    from prefect.client.orchestration import get_client

    from lifecycle import registry

    settings = get_settings()
    if registry.version_by_alias(registry.CHAMPION, settings) is not None:
        return
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("train-model/daily")
        run = client.create_flow_run_from_deployment(deployment.id)
    print(f"no champion yet: started training run {run.name} ({run.id})", flush=True)


if __name__ == "__main__" and sys.argv[1:] == ["worker"]:
    sys.exit(worker_main())
