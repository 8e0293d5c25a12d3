"""`make deploy` with LIFECYCLE_WORK_POOL_TYPE=kubernetes and =ecs against a real Prefect server:
the pool is created with that worker type (from its default base job template) and both
deployments land on it with their job variables and a pull step that does not point at this
checkout (PrefectHQ/prefect#10285), read back through the API. No worker runs: no cluster here.

The deploys go to the session's Prefect server: nothing runs from these deployments (no worker,
no automation, and that server runs no scheduler: their schedules create no runs there), and
tests/integration/test_deployments.py, whose `train-model/daily` a deploy
here would re-point, has a server of its own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployments import pools
from lifecycle.core.settings import Settings
from tests.fixtures.prefect import make_deploy

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENTS = ("train-model/daily", "build-reports/every-3h")
# Settings a production install would set: they must reach the job variables as given.
INSTALL = {
    "LIFECYCLE_IMAGE": "registry.example.com/lifecycle/worker:1.4.2",
    "LIFECYCLE_NAMESPACE": "ml-prod",
    "LIFECYCLE_ECS_CLUSTER": "ml-prod-cluster",
    "LIFECYCLE_FLOW_CPU_MILLICORES": "2000",
    "LIFECYCLE_FLOW_MEMORY_MIB": "4096",
}


def _make_deploy(prefect_server: str, pool_type: str, home: Path) -> str:
    """`python -m deployments` (what `make deploy` runs) for one pool type; its output."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "LIFECYCLE_"))},
        **INSTALL,
        "PREFECT_API_URL": prefect_server,
        "MLOPS_HOME": str(home),
        "LIFECYCLE_WORK_POOL_TYPE": pool_type,
    }
    return make_deploy(env)


def _read_back(url: str, pool_name: str) -> tuple[Any, dict[str, Any]]:
    """The pool, and each deployment of prefect.yaml as the server holds it."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as client:
        pool = client.read_work_pool(pool_name)
        deployments = {name: client.read_deployment_by_name(name) for name in DEPLOYMENTS}
    return pool, deployments


def _assert_pulls_from_the_image(deployment: Any) -> None:
    [step] = deployment.pull_steps
    directory = step["prefect.deployments.steps.set_working_directory"]["directory"]
    assert directory == "/app", "the image's code, not the deploying machine's folder"
    assert str(ROOT) not in str(deployment.pull_steps)


def test_deploy_kubernetes_pool_and_both_deployments_with_job_variables(
    prefect_server: str, tmp_path: Path
) -> None:
    output = _make_deploy(prefect_server, "kubernetes", tmp_path / "mlops")
    assert "work-pool create lifecycle-kubernetes --type kubernetes" in output
    pool, deployments = _read_back(prefect_server, "lifecycle-kubernetes")
    assert pool.type == "kubernetes"
    # the default base job template (prefect-kubernetes), plus the chart's settings + secrets
    template = pool.base_job_template
    assert {"image", "namespace", "cpu_request", "memory_limit"} <= set(
        template["variables"]["properties"]
    )
    container = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["envFrom"] == [
        {"configMapRef": {"name": "lifecycle-settings"}},
        {"secretRef": {"name": "lifecycle-secrets"}},
    ]
    assert container["volumeMounts"] == [{"name": "reports", "mountPath": "/srv/reports"}]
    for deployment in deployments.values():
        assert deployment.work_pool_name == "lifecycle-kubernetes"
        variables = deployment.job_variables
        assert variables["image"] == INSTALL["LIFECYCLE_IMAGE"]
        assert variables["namespace"] == "ml-prod"
        assert (variables["cpu_request"], variables["cpu_limit"]) == ("2000m", "2000m")
        assert (variables["memory_request"], variables["memory_limit"]) == ("4096Mi", "4096Mi")
        assert variables["backoff_limit"] == 0
        _assert_pulls_from_the_image(deployment)
    # the schedules come from prefect.yaml unchanged
    [schedule] = deployments["train-model/daily"].schedules
    assert schedule.schedule.cron == "0 2 * * *"


def test_deploy_ecs_pool_and_both_deployments_with_job_variables(
    prefect_server: str, tmp_path: Path
) -> None:
    output = _make_deploy(prefect_server, "ecs", tmp_path / "mlops")
    assert "work-pool create lifecycle-ecs --type ecs" in output
    pool, deployments = _read_back(prefect_server, "lifecycle-ecs")
    assert pool.type == "ecs"
    assert {"image", "cluster", "cpu", "memory"} <= set(
        pool.base_job_template["variables"]["properties"]
    )
    for deployment in deployments.values():
        assert deployment.work_pool_name == "lifecycle-ecs"
        variables = deployment.job_variables
        assert variables["image"] == INSTALL["LIFECYCLE_IMAGE"]
        assert variables["cluster"] == "ml-prod-cluster"
        # ECS wants integers: CPU units (1024 = one vCPU) and MiB
        assert (variables["cpu"], variables["memory"]) == (2048, 4096)
        assert variables["launch_type"] == "FARGATE"
        _assert_pulls_from_the_image(deployment)


@pytest.mark.parametrize("pool_type", ["kubernetes", "ecs"])
def test_cluster_variant_keeps_the_deployments_of_prefect_yaml(
    pool_type: pools.PoolType, tmp_path: Path
) -> None:
    """Only pull step and work pool differ from prefect.yaml: the variants cannot drift."""
    resolved = yaml.safe_load(pools.prefect_file(Settings(), pool_type, tmp_path).read_text())
    original = yaml.safe_load(pools.PREFECT_FILE.read_text())
    assert len(resolved["deployments"]) == len(original["deployments"]) == 2
    for mine, theirs in zip(resolved["deployments"], original["deployments"], strict=True):
        assert mine["work_pool"]["name"] == pools.POOLS[pool_type]
        assert {k: v for k, v in mine.items() if k != "work_pool"} == {
            k: v for k, v in theirs.items() if k != "work_pool"
        }
    assert resolved["pull"] != original["pull"]
