"""What a distributed search refuses before it starts (lifecycle.training.cluster and
flows.distributed.check_cluster): one line naming the settings involved, never a silent local
fallback."""

from __future__ import annotations

import time

import pytest

from flows.distributed import check_cluster
from lifecycle.core.settings import Settings
from lifecycle.training.cluster import ClusterError, check_settings, scheduler_is_local
from ops.local_servers import free_port

API = "http://prefect.example:4200/api"


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("tcp://127.0.0.1:8786", True),
        ("localhost:8786", True),
        ("tcp://[::1]:8786", True),
        ("inproc://10.0.0.1/1/2", True),
        ("tcp://dask-scheduler:8786", False),
        ("tls://10.1.2.3:8786", False),
    ],
)
def test_scheduler_is_local_by_address(address: str, local: bool) -> None:
    assert scheduler_is_local(address) is local


def test_check_settings_unset_address_checks_nothing(tmp_path) -> None:
    check_settings(Settings(MLOPS_HOME=str(tmp_path)), api_url=None)


def test_check_settings_refuses_sqlite_tracking_with_a_remote_scheduler(tmp_path) -> None:
    settings = Settings(MLOPS_HOME=str(tmp_path), MLOPS_DASK_ADDRESS="tcp://dask-scheduler:8786")
    with pytest.raises(ClusterError) as caught:
        check_settings(settings, API)
    message = str(caught.value)
    assert "MLFLOW_TRACKING_URI=sqlite:" in message
    assert "MLOPS_DASK_ADDRESS=tcp://dask-scheduler:8786" in message
    assert "\n" not in message


def test_check_settings_accepts_sqlite_tracking_with_a_local_scheduler(tmp_path) -> None:
    settings = Settings(MLOPS_HOME=str(tmp_path), MLOPS_DASK_ADDRESS="tcp://127.0.0.1:8786")
    check_settings(settings, "http://127.0.0.1:4200/api")


def test_check_settings_refuses_without_a_prefect_api_url(tmp_path) -> None:
    settings = Settings(MLOPS_HOME=str(tmp_path), MLOPS_DASK_ADDRESS="tcp://127.0.0.1:8786")
    with pytest.raises(ClusterError, match=r"MLOPS_DASK_ADDRESS=.* needs PREFECT_API_URL"):
        check_settings(settings, None)


def test_check_settings_refuses_loopback_urls_with_a_remote_scheduler(tmp_path) -> None:
    settings = Settings(
        MLOPS_HOME=str(tmp_path),
        MLOPS_DASK_ADDRESS="tcp://dask-scheduler:8786",
        MLFLOW_TRACKING_URI="http://mlflow:5000",
    )
    check_settings(settings, API)
    with pytest.raises(ClusterError, match=r"PREFECT_API_URL=http://127\.0\.0\.1:4200/api"):
        check_settings(settings, "http://127.0.0.1:4200/api")


def test_check_cluster_unreachable_scheduler_fails_fast_naming_it(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    settings = Settings(MLOPS_HOME=str(tmp_path), MLOPS_DASK_ADDRESS=address)
    monkeypatch.setattr("flows.distributed.prefect_api_url", lambda: API)
    started = time.perf_counter()
    with pytest.raises(ClusterError) as caught:
        check_cluster(settings)
    assert time.perf_counter() - started < 15
    assert f"MLOPS_DASK_ADDRESS={address}" in str(caught.value)
    assert "\n" not in str(caught.value)
