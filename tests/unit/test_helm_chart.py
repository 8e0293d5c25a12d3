"""The Helm chart (deployments/helm/lifecycle), proved without a cluster: rendered offline by
Helm's own Go SDK (helm-python-sdk, test-only), every manifest validated against the
Kubernetes 1.31 schemas (kubernetes-validate, strict: unknown fields fail), then what the issue
asks of it asserted: probes, HPA bounds, PDB, the journal's PVC template, non-root, a read-only
root filesystem, resource limits, the worker's RBAC, and `required` secrets."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.servers import require_binary

CHART = Path(__file__).resolve().parents[2] / "deployments" / "helm" / "lifecycle"
KUBERNETES = "1.31.0"
SECRETS = {
    "apiKey": "test-api-key",
    "mongoUri": "mongodb://u:p@m1,m2,m3/?replicaSet=rs0&w=majority&journal=true",
    "mlflowUsername": "lifecycle",
    "mlflowPassword": "test-password",
}


def render(values: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Render as `helm template lifecycle CHART -n ml --values ...`: {(kind, name): manifest}."""
    import helm_python as helm

    with helm.Chart.load(CHART) as chart:
        files = chart.render(values, name="lifecycle", namespace="ml", is_install=True)
    manifests = {}
    for path, text in files.items():
        if not path.endswith(".yaml"):
            continue  # NOTES.txt
        for document in yaml.safe_load_all(text):
            if document:
                manifests[(document["kind"], document["metadata"]["name"])] = document
    return manifests


def merged(*layers: dict[str, Any]) -> dict[str, Any]:
    """Values files layered as Helm does (-f a -f b): nested maps merge, the last one wins."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merged(out[key], value)
            else:
                out[key] = value
    return out


def production_values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values-production.yaml").read_text())


@pytest.fixture(scope="module")
def default() -> dict[tuple[str, str], dict[str, Any]]:
    return render({"secrets": SECRETS})


@pytest.fixture(scope="module")
def production() -> dict[tuple[str, str], dict[str, Any]]:
    return render(merged(production_values(), {"secrets": SECRETS}))


def containers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return manifest["spec"]["template"]["spec"]["containers"]


@pytest.mark.parametrize("variant", ["default", "production"])
def test_chart_every_manifest_validates_against_kubernetes_1_31(
    variant: str, request: pytest.FixtureRequest
) -> None:
    import kubernetes_validate

    manifests = request.getfixturevalue(variant)
    kinds = {kind for kind, _ in manifests}
    assert {
        "StatefulSet", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap",
        "Secret", "Deployment", "ServiceAccount", "Role", "RoleBinding", "PersistentVolumeClaim",
    } <= kinds  # fmt: skip
    for (kind, name), manifest in manifests.items():
        try:
            kubernetes_validate.validate(manifest, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{kind}/{name}: {exc}")


def test_chart_api_is_a_statefulset_with_a_journal_claim_per_replica(default: dict) -> None:
    api = default[("StatefulSet", "lifecycle-api")]
    [claim] = api["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "journal"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    [container] = containers(api)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["journal"] == "/var/lib/lifecycle"  # MLOPS_HOME: the journal is its spool/
    settings = default[("ConfigMap", "lifecycle-settings")]["data"]
    assert settings["MLOPS_HOME"] == "/var/lib/lifecycle"
    assert api["spec"]["serviceName"] in {name for kind, name in default if kind == "Service"}
    # The HPA owns the replica count: the StatefulSet does not fight it on every upgrade.
    assert "replicas" not in api["spec"]


def test_chart_api_probes(default: dict) -> None:
    [container] = containers(default[("StatefulSet", "lifecycle-api")])
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/health"
    # at least two minutes to load the first model before liveness may restart the pod
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


@pytest.mark.parametrize(("variant", "bounds"), [("default", (2, 6)), ("production", (3, 12))])
def test_chart_hpa_scales_the_statefulset_on_cpu_within_the_values_bounds(
    variant: str, bounds: tuple[int, int], request: pytest.FixtureRequest
) -> None:
    manifests = request.getfixturevalue(variant)
    hpa = manifests[("HorizontalPodAutoscaler", "lifecycle-api")]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": "lifecycle-api",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == bounds
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"


def test_chart_without_autoscaling_sets_the_replicas_and_no_hpa() -> None:
    manifests = render({"secrets": SECRETS, "api": {"autoscaling": {"enabled": False}}})
    assert manifests[("StatefulSet", "lifecycle-api")]["spec"]["replicas"] == 2
    assert not any(kind == "HorizontalPodAutoscaler" for kind, _ in manifests)


def test_chart_pdb_selects_the_api_pods(default: dict) -> None:
    pdb = default[("PodDisruptionBudget", "lifecycle-api")]
    api = default[("StatefulSet", "lifecycle-api")]
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == api["spec"]["selector"]


@pytest.mark.parametrize("variant", ["default", "production"])
def test_chart_every_pod_is_non_root_read_only_and_limited(
    variant: str, request: pytest.FixtureRequest
) -> None:
    manifests = request.getfixturevalue(variant)
    workloads = [m for (kind, _), m in manifests.items() if kind in {"StatefulSet", "Deployment"}]
    assert len(workloads) == 4  # api, exporter, reports, worker
    for workload in workloads:
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), name
            assert {"cpu", "memory"} <= set(resources["limits"]), name


def test_chart_production_values_reach_the_manifests(production: dict) -> None:
    api = production[("StatefulSet", "lifecycle-api")]
    [container] = containers(api)
    assert container["image"] == "registry.example.com/lifecycle/api:0.1.0"
    assert container["command"][-2:] == ["--workers", "2"]
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}
    [claim] = api["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    settings = production[("ConfigMap", "lifecycle-settings")]["data"]
    assert settings["MLOPS_PREDICTION_TTL_DAYS"] == "90"
    assert settings["MLOPS_LOG_QUEUE"] == "0"  # an OOM-killed pod loses no answered row
    assert settings["LIFECYCLE_IMAGE"] == "registry.example.com/lifecycle/worker:0.1.0"


def test_chart_exporter_is_scraped_by_prometheus(default: dict) -> None:
    exporter = default[("Deployment", "lifecycle-exporter")]
    annotations = exporter["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "9108"
    service = default[("Service", "lifecycle-exporter")]
    assert service["spec"]["ports"][0]["port"] == 9108
    assert service["spec"]["selector"] == exporter["spec"]["selector"]["matchLabels"]


def test_chart_reports_nginx_mounts_the_reports_claim_read_only(
    default: dict, tmp_path: Path
) -> None:
    reports = default[("Deployment", "lifecycle-reports")]
    pod = reports["spec"]["template"]["spec"]
    [volume] = [v for v in pod["volumes"] if v["name"] == "reports"]
    assert volume["persistentVolumeClaim"] == {"claimName": "lifecycle-reports", "readOnly": True}
    [mount] = [m for m in containers(reports)[0]["volumeMounts"] if m["name"] == "reports"]
    assert mount["readOnly"] is True
    # the config the chart renders from reporting/nginx/nginx.conf is one nginx accepts
    conf = default[("ConfigMap", "lifecycle-reports-nginx")]["data"]["nginx.conf"]
    assert "${" not in conf
    nginx = require_binary("nginx")
    prefix = tmp_path / "prefix"
    (prefix / "tmp").mkdir(parents=True)
    path = tmp_path / "nginx.conf"
    path.write_text(conf.replace("/tmp/nginx", str(prefix)))
    result = subprocess.run(
        [nginx, "-t", "-c", str(path), "-p", str(prefix)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_chart_worker_role_allows_exactly_jobs_and_their_pods(default: dict) -> None:
    role = default[("Role", "lifecycle-worker")]
    resources = {(group, r) for rule in role["rules"] for group in rule["apiGroups"] for r in (
        rule["resources"])}  # fmt: skip
    assert resources == {("batch", "jobs"), ("", "pods"), ("", "pods/log"), ("", "pods/status")}
    for rule in role["rules"]:
        if "pods" in rule["resources"]:
            assert set(rule["verbs"]) == {"get", "list", "watch"}
    binding = default[("RoleBinding", "lifecycle-worker")]
    worker = default[("Deployment", "lifecycle-worker")]
    assert binding["roleRef"]["name"] == "lifecycle-worker"
    assert (
        binding["subjects"][0]["name"] == worker["spec"]["template"]["spec"]["serviceAccountName"]
    )
    settings = default[("ConfigMap", "lifecycle-settings")]["data"]
    assert settings["LIFECYCLE_WORK_POOL_TYPE"] == "kubernetes"
    assert settings["LIFECYCLE_NAMESPACE"] == "ml"  # flow-run Jobs where the Role applies


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_chart_refuses_to_render_without_a_required_secret(secret: str) -> None:
    import helm_python as helm

    values = {"secrets": {k: v for k, v in SECRETS.items() if k != secret}}
    with pytest.raises(helm.HelmError, match=rf"secrets\.{secret} is required"):
        render(values)


# Values that are Kubernetes objects or free-form maps: documented as one value.
MAPS_AS_ONE_VALUE = {"resources", "settings", "seccompProfile", "capabilities"}


def test_chart_readme_documents_every_value() -> None:
    readme = (CHART / "README.md").read_text()

    def keys(values: dict[str, Any], prefix: str = "") -> list[str]:
        out = []
        for key, value in values.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict) and value and key not in MAPS_AS_ONE_VALUE:
                out += keys(value, f"{name}.")
            else:
                out.append(name)
        return out

    for key in keys(yaml.safe_load((CHART / "values.yaml").read_text())):
        assert f"`{key}`" in readme, f"document {key} in {CHART / 'README.md'}"
    assert "helm install lifecycle" in readme
