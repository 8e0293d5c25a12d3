"""What a search on a Dask cluster (MLOPS_DASK_ADDRESS) needs before it starts, checked with
one line naming the settings involved: a tracking store and a Prefect API its workers can reach,
and a scheduler that answers. Light to import (no Prefect): `mlops train` runs these before it
starts anything, so an unreachable scheduler fails the command within seconds.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from lifecycle.core.errors import LifecycleError
from lifecycle.core.settings import Settings

# Connecting gives up after this: `mlops train` must fail within ~15 s, imports included.
CONNECT_TIMEOUT_SECONDS = 5
# A scheduler that answers but has no worker yet (workers starting beside it) gets this long.
WORKERS_TIMEOUT_SECONDS = 30


class ClusterError(LifecycleError):
    """The Dask cluster cannot run this search (unreachable, or settings its workers cannot use)."""


def _loopback(host: str | None) -> bool:
    if not host or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def scheduler_is_local(address: str) -> bool:
    """Whether the scheduler at `address` (tcp://host:port, host:port, inproc://) is on this
    machine's loopback, so that its workers share this machine's files and loopback ports."""
    if address.startswith("inproc://"):
        return True
    if "://" not in address:
        address = f"tcp://{address}"
    return _loopback(urlsplit(address).hostname)


def check_tracking(settings: Settings) -> None:
    """Refuse a tracking store the workers of a remote scheduler cannot write to."""
    address = settings.dask_address
    if not address or scheduler_is_local(address):
        return
    uri = settings.mlflow_tracking_uri
    if uri.startswith(("sqlite:", "file:")) or "://" not in uri:
        raise ClusterError(
            f"MLFLOW_TRACKING_URI={uri} is a local store, but the trials run on the workers of "
            f"MLOPS_DASK_ADDRESS={address}: point MLFLOW_TRACKING_URI at an HTTP tracking server"
        )
    _reachable("MLFLOW_TRACKING_URI", uri, address)


def check_prefect_api(settings: Settings, api_url: str | None) -> None:
    """Refuse a search whose workers would have no Prefect API to report to."""
    address = settings.dask_address
    if not address:
        return
    if not api_url:
        # The settings context Prefect sends with each task carries PREFECT_API_URL to the
        # workers; without one, each worker would start a throwaway Prefect server of its own.
        raise ClusterError(
            f"MLOPS_DASK_ADDRESS={address} needs PREFECT_API_URL: the workers report each trial's "
            "task run to that Prefect server (start one: prefect server start)"
        )
    if not scheduler_is_local(address):
        _reachable("PREFECT_API_URL", api_url, address)


def check_settings(settings: Settings, api_url: str | None) -> None:
    """Both checks: tracking store and Prefect API."""
    check_tracking(settings)
    check_prefect_api(settings, api_url)


def _reachable(name: str, url: str, address: str) -> None:
    if "://" in url and _loopback(urlsplit(url).hostname):
        raise ClusterError(
            f"{name}={url} is this machine's loopback, which the workers of "
            f"MLOPS_DASK_ADDRESS={address} cannot reach: use an address they can"
        )


def probe_scheduler(address: str) -> None:
    """A scheduler that answers within CONNECT_TIMEOUT_SECONDS and has at least one worker."""
    from distributed import Client

    try:
        with Client(address, timeout=f"{CONNECT_TIMEOUT_SECONDS}s", set_as_default=False) as c:
            if not c.nthreads():
                c.wait_for_workers(1, timeout=WORKERS_TIMEOUT_SECONDS)
    except (OSError, TimeoutError) as exc:
        cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ClusterError(f"Dask scheduler MLOPS_DASK_ADDRESS={address}: {cause}") from None
