"""`make up`: the local stack in the foreground, run by honcho from a generated Procfile.

    prefect  Prefect server (UI + API)                 :4200
    worker   applies the deployments (make deploy), starts a first training run when there is
             no champion yet, then runs a process worker on the `lifecycle` pool
    mlflow   MLflow tracking server + UI on the same sqlite store and artifacts   :5000
    mongo    nx-27017, the local MongoDB-wire server    :27017
    api      the serving API                            :8000
             (MLOPS_API_REPLICAS=N: api-1 ... api-N on :8001 ... and `balancer`, nginx on :8000)
    nginx    the reports, when nginx is installed       :8088
    dask     with MLOPS_DASK_WORKERS=N: `mlops cluster`, a Dask scheduler and N workers that
             training runs its trials on (MLOPS_DASK_ADDRESS)   :8786
    kinesis  with MLOPS_STREAM=true: `mlops kinesis`, a local Kinesis endpoint (moto_server)
             with the three streams                            :4567
    stream   with MLOPS_STREAM=true: `mlops stream`, the Kinesis consumer (/metrics :9110)

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

from lifecycle.core.settings import Settings, get_settings
from ops.load_balancer import LoadBalancer, replica_ports, write_config
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
    dask: int = 8786
    kinesis: int = 4567


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
        # MLflow 3's server starts five huey job consumers (GenAI jobs this project never
        # runs), each importing MLflow: off for the local UI, as is the default of 4 workers.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        # The worker's health server would otherwise listen on 0.0.0.0:8080.
        "PREFECT_WORKER_WEBSERVER_HOST": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
        # MLOPS_DASK_WORKERS: training runs its trials on the stack's own `dask` process.
        **(
            {"MLOPS_DASK_ADDRESS": f"tcp://127.0.0.1:{ports.dask}"} if settings.dask_workers else {}
        ),
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
            f"{shlex.quote(artifacts)} --host 127.0.0.1 --port {ports.mlflow} --workers 1"
        ),
        "mongo": f"{mlops} mongo --port {ports.mongo}",
        **api_processes(settings, ports),
    }
    if with_nginx:
        lines["nginx"] = f"{py} -m reporting.nginx --port {ports.nginx}"
    if settings.dask_workers:
        lines["dask"] = f"{mlops} cluster --workers {settings.dask_workers} --port {ports.dask}"
    if settings.stream_enabled:
        lines.update(stream_processes(settings, ports))
    return "".join(f"{name}: {command}\n" for name, command in lines.items())


def api_processes(settings: Settings, ports: Ports) -> dict[str, str]:
    """The API on its port; with MLOPS_API_REPLICAS=N, N replicas on the ports after it, each
    with its own journal folder, behind nginx on the API port (ops/load_balancer.py)."""
    mlops = shlex.quote(str(BIN / "mlops"))
    if settings.api_replicas == 1:
        return {"api": f"{mlops} serve --port {ports.api}"}
    lines = {}
    for i, port in enumerate(replica_ports(ports.api, settings.api_replicas), start=1):
        spool = shlex.quote(str(settings.home / "spool" / f"replica-{i}"))
        lines[f"api-{i}"] = f"MLOPS_SPOOL_DIR={spool} {mlops} serve --port {port}"
    balancer = load_balancer_config(settings, ports)
    lines["balancer"] = shlex.join(balancer.command())
    return lines


def load_balancer_config(settings: Settings, ports: Ports) -> LoadBalancer:
    """Write the replicas' nginx config under MLOPS_HOME/load-balancer."""
    return write_config(
        replica_ports(ports.api, settings.api_replicas),
        ports.api,
        settings.home / "load-balancer",
        max_body_bytes=settings.max_body_bytes,
    )


def nginx_installed() -> bool:
    return shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists()


def stream_processes(settings: Settings, ports: Ports) -> dict[str, str]:
    """MLOPS_STREAM=true: the local Kinesis endpoint and the consumer. Only Kinesis is pointed
    at it (AWS_ENDPOINT_URL_KINESIS), with moto's placeholder credentials unless the user set
    some; the consumer waits for the streams `mlops kinesis` creates."""
    mlops = shlex.quote(str(BIN / "mlops"))
    local = (
        f"AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:{ports.kinesis} "
        "AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1} "
        "AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-local} "
        "AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-local}"
    )
    return {
        "kinesis": f"{mlops} kinesis --port {ports.kinesis}",
        "stream": f"{local} {mlops} stream --wait 120",
    }


def run_stack(ports: Ports) -> int:
    """Write the Procfile and replace this process with honcho (Ctrl-C reaches it directly)."""
    from lifecycle.stores import registry

    settings = get_settings()
    # Create the MLflow tables and experiment now: the API and the MLflow server would
    # otherwise both migrate a fresh sqlite store at once, and one of them dies.
    registry.configure(settings)
    with_nginx = nginx_installed()
    if settings.api_replicas > 1 and not with_nginx:
        print(
            f"error: MLOPS_API_REPLICAS={settings.api_replicas} needs nginx as the load balancer "
            "(sudo apt-get install nginx)",
            file=sys.stderr,
        )
        return 1
    path = settings.home / "Procfile"
    path.write_text(procfile(settings, ports, with_nginx))
    env = {**os.environ, **environment(settings, ports)}
    print("Lifecycle local stack (Ctrl-C stops all of it):", flush=True)
    for name, url in urls(ports, with_nginx).items():
        print(f"  {name:<12} {url}", flush=True)
    if settings.dask_workers:
        print(f"  Dask         tcp://127.0.0.1:{ports.dask} ({settings.dask_workers} workers)")
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

    from lifecycle.stores import registry

    settings = get_settings()
    if registry.version_by_alias(registry.CHAMPION, settings) is not None:
        return
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("train-model/daily")
        run = client.create_flow_run_from_deployment(deployment.id)
    print(f"no champion yet: started training run {run.name} ({run.id})", flush=True)


if __name__ == "__main__" and sys.argv[1:] == ["worker"]:
    sys.exit(worker_main())
