"""`mlops cluster`: a local Dask cluster in the foreground (a `dask scheduler` and N `dask worker`
processes, the commands of `distributed` underneath), for `MLOPS_DASK_ADDRESS`. `make up` runs
it when MLOPS_DASK_WORKERS is set; the test fixtures and the benchmark start one the same way.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import typer

from lifecycle.core.errors import LifecycleError

BIN = Path(sys.executable).parent
# Bounds for a loaded 2-core machine: a worker process imports distributed (a few seconds each,
# all of them at once) before it registers.
SCHEDULER_TIMEOUT_SECONDS = 60
WORKERS_TIMEOUT_SECONDS = 120


def register(app: typer.Typer) -> None:
    """Add `mlops cluster` to `app`."""
    app.command()(cluster)


@dataclass
class LocalCluster:
    """A scheduler and its workers, each its own process (stop() ends them all)."""

    host: str
    port: int
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def add_worker(self, threads: int, name: str, nanny: bool, log: IO | None = None) -> None:
        """Start one more `dask worker` (without a nanny, a SIGKILL ends it for good)."""
        command = [str(BIN / "dask"), "worker", self.address, "--nthreads", str(threads)]
        command += ["--name", name, "--dashboard-address", ":0"]
        command += ["--nworkers", "1"] if nanny else ["--no-nanny"]
        self.workers.append(_spawn(command, log))

    def wait_for_workers(self, n: int, timeout: float = WORKERS_TIMEOUT_SECONDS) -> None:
        from distributed import Client

        try:
            with Client(self.address, timeout="10s", set_as_default=False) as client:
                client.wait_for_workers(n, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            self.stop()
            raise LifecycleError(f"Dask cluster at {self.address}: {exc}") from None

    def stop(self) -> None:
        from ops.local_servers import stop_process

        for proc in [*self.workers, self.scheduler]:
            stop_process(proc)

    def exited(self) -> subprocess.Popen | None:
        """A process of the cluster that has exited, if any."""
        return next((p for p in [self.scheduler, *self.workers] if p.poll() is not None), None)


def _spawn(command: list[str], log: IO | None) -> subprocess.Popen:
    out = log if log is not None else subprocess.DEVNULL
    return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


def start_cluster(
    workers: int,
    threads: int,
    host: str = "127.0.0.1",
    port: int | None = None,
    nanny: bool = True,
    log: IO | None = None,
) -> LocalCluster:
    """A scheduler on host:port (a free port when None) and `workers` registered workers."""
    from ops.local_servers import free_port, wait_port

    port = port or free_port()
    command = [str(BIN / "dask"), "scheduler", "--host", host, "--port", str(port)]
    command += ["--dashboard-address", ":0"]
    found = LocalCluster(host, port, _spawn(command, log))
    try:
        wait_port(port, SCHEDULER_TIMEOUT_SECONDS, found.scheduler)
    except (RuntimeError, TimeoutError) as exc:
        found.stop()
        raise LifecycleError(f"dask scheduler on {host}:{port}: {exc}") from None
    for i in range(workers):
        found.add_worker(threads, f"worker-{i + 1}", nanny, log)
    found.wait_for_workers(workers)
    return found


def cluster(
    workers: int = typer.Option(2, "--workers", "-w", min=1, help="dask worker processes."),
    threads: int = typer.Option(1, "--threads", "-t", min=1, help="threads per worker."),
    host: str = typer.Option("127.0.0.1", "--host", help="interface the scheduler listens on."),
    port: int = typer.Option(8786, "--port", help="scheduler port."),
) -> None:
    """Run a local Dask scheduler and WORKERS workers until Ctrl-C; prints MLOPS_DASK_ADDRESS."""
    # The processes log to this terminal (stderr), as `make up` shows every process.
    local = start_cluster(workers, threads, host, port, log=sys.stderr)
    typer.echo(f"Dask cluster: {workers} workers x {threads} threads (Ctrl-C stops it)")
    typer.echo(f"MLOPS_DASK_ADDRESS={local.address}", color=False)
    sys.stdout.flush()
    try:
        while (gone := local.exited()) is None:
            time.sleep(0.5)  # pacing the watch, not waiting for a condition to assert
        raise LifecycleError(f"a Dask cluster process exited with {gone.returncode}; stopped all")
    finally:
        local.stop()
