"""docker/: the Compose stack and the Dockerfiles, checked without a Docker engine.

`docker-compose config` (Debian 1.29) resolves and validates the file with the example env
file; hadolint lints the Dockerfiles; the rest reads the resolved config and the Dockerfiles
for what the operations issue asks: healthchecks, conditions, pinned images, non-root users.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from lifecycle.core.settings import Settings
from tests.fixtures.operations import (
    CLOUD_ENV_EXAMPLE,
    DOCKER_DIR,
    REPO_ROOT,
    compose_config,
    dockerfile_instructions,
    hadolint,
    write_env_file,
)

SERVICES = {
    "mongo", "postgres", "minio", "minio-init", "mlflow", "prefect-server", "prefect-worker",
    "api", "exporter", "nginx", "prometheus", "alertmanager-config", "alertmanager", "grafana",
    "dask-scheduler", "dask-worker",
    "mongo-keyfile", "mongo-2", "mongo-3", "mongo-init",
    "stream", "localstack",  # Compose profiles "stream" and "localstack" (`config` lists them)
}  # fmt: skip
SECRETS = (
    "POSTGRES_PASSWORD", "MONGO_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "MLOPS_API_KEY", "GRAFANA_ADMIN_PASSWORD", "MLOPS_ALERT_WEBHOOK_URL", "MONGO_REPLICA_SET_KEY",
)  # fmt: skip
DOCKERFILES = sorted(DOCKER_DIR.glob("*.Dockerfile"))
# Settings the env file does not carry: the stack fixes them by its own topology, or (the
# metrics folder of uvicorn workers) `mlops serve` derives them from MLOPS_HOME.
NOT_IN_ENV_FILE = {
    "MLOPS_HOME", "MLFLOW_TRACKING_URI", "MONGO_URI", "MLOPS_REPORTS_DIR",
    "PROMETHEUS_MULTIPROC_DIR",
    # `make up` (replicas, each its own journal folder) and `make deploy`'s cluster pool variants:
    # the Compose stack runs one API service and a process worker.
    "MLOPS_API_REPLICAS", "MLOPS_SPOOL_DIR", "LIFECYCLE_WORK_POOL_TYPE", "LIFECYCLE_IMAGE",
    "LIFECYCLE_NAMESPACE", "LIFECYCLE_ECS_CLUSTER", "LIFECYCLE_FLOW_CPU_MILLICORES",
    "LIFECYCLE_FLOW_MEMORY_MIB",
}  # fmt: skip
# Services whose images run Lifecycle code: they must not run as root.
PROJECT_SERVICES = ("api", "prefect-worker", "exporter")


def dockerfile_of(service: dict) -> Path | None:
    build = service.get("build")
    return Path(build["context"]) / build["dockerfile"] if build else None


def has_healthcheck(service: dict) -> bool:
    if "healthcheck" in service:
        return not service["healthcheck"].get("disable", False)
    dockerfile = dockerfile_of(service)
    return dockerfile is not None and any(
        keyword == "HEALTHCHECK" and arguments != "NONE"
        for keyword, arguments in dockerfile_instructions(dockerfile)
    )


def one_shot_jobs(stack: dict) -> set[str]:
    """Services that others wait on to *finish*: they need no healthcheck, only an exit code."""
    return {
        name
        for service in stack["services"].values()
        for name, dependency in service.get("depends_on", {}).items()
        if dependency.get("condition") == "service_completed_successfully"
    }


def final_user(dockerfile: Path) -> str:
    users = [args for keyword, args in dockerfile_instructions(dockerfile) if keyword == "USER"]
    return users[-1] if users else "root"


# ---- docker-compose config ------------------------------------------------------------------


def test_compose_config_validates_with_the_example_env_file(compose_stack: dict) -> None:
    assert set(compose_stack["services"]) == SERVICES
    api = compose_stack["services"]["api"]["environment"]
    # The example's values reach the services, and the URIs point at the Compose services.
    assert api["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert api["MONGO_URI"].startswith("mongodb://lifecycle:")
    # the replica set's three members (the first one is the seed the test checked before)
    assert "@mongo:27017,mongo-2:27017,mongo-3:27017/?replicaSet=rs0&" in api["MONGO_URI"]
    assert api["MLOPS_TRIALS"] == "50"


@pytest.mark.parametrize("secret", SECRETS)
def test_compose_config_without_a_secret_fails_naming_it(secret: str, tmp_path: Path) -> None:
    result = compose_config(write_env_file(tmp_path / "cloud.env", drop=(secret,)))
    assert result.returncode != 0
    assert secret in result.stderr


def test_compose_unset_optional_setting_is_not_passed_as_empty_string(compose_stack: dict) -> None:
    # MLOPS_TASK is commented out in the example: the container must not see MLOPS_TASK="" (the
    # settings would reject it), it must not see the variable at all.
    for name in PROJECT_SERVICES:
        environment = compose_stack["services"][name]["environment"]
        assert "MLOPS_TASK" in environment and environment["MLOPS_TASK"] is None


def test_compose_every_service_is_healthchecked_or_a_one_shot_job(compose_stack: dict) -> None:
    jobs = one_shot_jobs(compose_stack)
    for name, service in compose_stack["services"].items():
        if name in jobs:
            assert service.get("restart", "no") == "no", f"{name}: a job must not be restarted"
        else:
            assert has_healthcheck(service), f"{name} has no healthcheck"


def test_compose_depends_on_waits_for_health_or_completion(compose_stack: dict) -> None:
    services = compose_stack["services"]
    jobs = one_shot_jobs(compose_stack)
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            condition = spec.get("condition")
            assert condition in {"service_healthy", "service_completed_successfully"}, (
                f"{name} -> {dependency}: {condition}"
            )
            if condition == "service_healthy":
                assert has_healthcheck(services[dependency]), f"{dependency} cannot become healthy"
            else:
                assert dependency in jobs


def test_compose_images_are_pinned(compose_stack: dict) -> None:
    for name, service in compose_stack["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"


def test_compose_state_lives_in_named_volumes(compose_stack: dict) -> None:
    declared = set(compose_stack["volumes"])
    used = set()
    for name, service in compose_stack["services"].items():
        for volume in service.get("volumes", []):
            source, _target, *mode = volume.split(":")
            if source.startswith("/"):
                # Bind mounts carry configuration from the repo only, read-only.
                assert mode == ["ro"], f"{name}: {volume} must be read-only"
                assert Path(source).is_relative_to(REPO_ROOT), f"{name}: {volume}"
            else:
                assert source in declared, f"{name}: {source} is not a declared volume"
                used.add(source)
    assert used == declared


def test_compose_config_mounts_point_at_files_in_the_repo(compose_stack: dict) -> None:
    for name, service in compose_stack["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("/"):
                assert Path(source).exists(), f"{name} mounts {source}, which does not exist"


def test_compose_nginx_serves_the_reports_volume_read_only(compose_stack: dict) -> None:
    nginx = compose_stack["services"]["nginx"]
    worker = compose_stack["services"]["prefect-worker"]
    assert "reports:/srv/reports:ro" in nginx["volumes"]
    # reporting/nginx/nginx.conf is a template; the image's envsubst fills in its root.
    assert nginx["environment"]["REPORTS_DIR"] == "/srv/reports"
    assert "reports:/srv/reports:rw" in worker["volumes"]
    assert worker["environment"]["MLOPS_REPORTS_DIR"] == "/srv/reports"


def test_compose_prometheus_config_scrapes_compose_services(compose_stack: dict) -> None:
    # The mounted monitoring/prometheus/prometheus.yml must target services and ports of this file.
    config = yaml.safe_load((REPO_ROOT / "monitoring/prometheus/prometheus.yml").read_text())
    ports = {"api": 8000, "exporter": 9108, "alertmanager": 9093, "stream": 9110}
    targets = [
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    ] + config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    for target in targets:
        host, port = target.split(":")
        if host != "localhost":
            assert host in compose_stack["services"] and ports[host] == int(port), target


def test_compose_grafana_dashboards_path_matches_the_provider(compose_stack: dict) -> None:
    provider = yaml.safe_load(
        (REPO_ROOT / "monitoring/grafana/provisioning/dashboards/lifecycle.yml").read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    targets = [v.split(":")[1] for v in compose_stack["services"]["grafana"]["volumes"]]
    assert path in targets


def test_compose_worker_pool_matches_the_deployments(compose_stack: dict) -> None:
    prefect_yaml = REPO_ROOT / "deployments" / "prefect.yaml"
    pool = compose_stack["services"]["prefect-worker"]["environment"]["LIFECYCLE_WORK_POOL"]
    deployments = yaml.safe_load(prefect_yaml.read_text())["deployments"]
    assert {d["work_pool"]["name"] for d in deployments} == {pool}


def test_cloud_env_example_documents_every_production_setting(compose_stack: dict) -> None:
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", CLOUD_ENV_EXAMPLE.read_text(), re.M))
    aliases = {str(field.validation_alias) for field in Settings.model_fields.values()}
    passed = set(compose_stack["services"]["api"]["environment"]) | set(
        compose_stack["services"]["alertmanager-config"]["environment"]
    )
    for alias in sorted(aliases - NOT_IN_ENV_FILE):
        assert alias in documented, f"document {alias} in .env.cloud.example"
        assert alias in passed, f"pass {alias} through x-lifecycle-env in docker-compose.yml"
    assert {"MONGO_URI", "MLFLOW_TRACKING_URI", "PREFECT_API_URL"} <= documented


# ---- Dockerfiles ----------------------------------------------------------------------------


def test_dockerfiles_are_hadolint_clean() -> None:
    assert {p.name for p in DOCKERFILES} == {
        "api.Dockerfile", "worker.Dockerfile", "exporter.Dockerfile", "mlflow.Dockerfile",
    }  # fmt: skip
    result = hadolint(*DOCKERFILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_flags_an_unpinned_base_image(tmp_path: Path) -> None:
    # Proves the lint above is a real check: the same binary rejects `latest`.
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text('FROM python:latest\nCMD ["python"]\n')
    result = hadolint(bad)
    assert result.returncode != 0 and "DL3007" in result.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_is_multi_stage_pinned_slim_non_root_and_healthchecked(dockerfile: Path) -> None:
    instructions = dockerfile_instructions(dockerfile)
    bases = [args.split()[0] for keyword, args in instructions if keyword == "FROM"]
    assert len(bases) >= 2, "multi-stage: a builder and a runtime stage"
    for base in bases:
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), f"unpinned base {base}"
    assert any(k == "COPY" and a.startswith("--from=builder") for k, a in instructions)
    user = final_user(dockerfile)
    assert user.split(":")[0] not in {"root", "0"}
    assert any(keyword == "HEALTHCHECK" for keyword, _ in instructions)


def test_project_services_run_as_non_root(compose_stack: dict) -> None:
    for name in (*PROJECT_SERVICES, "mlflow", "prefect-server"):
        service = compose_stack["services"][name]
        assert service.get("user", "10001").split(":")[0] not in {"root", "0"}, name
        assert final_user(dockerfile_of(service)) == "10001:10001", name
