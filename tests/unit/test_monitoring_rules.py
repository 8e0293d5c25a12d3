"""Prometheus, Alertmanager and Grafana files: promtool/amtool checks, rule unit tests, and the
structure the issue asks for (annotations, runbook entries, dashboard panels)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from lifecycle.core import metric_names
from lifecycle.core.settings import Settings
from monitoring.config import (
    ALERTMANAGER_TEMPLATE,
    DASHBOARDS_DIR,
    GRAFANA_DIR,
    MONITORING_DIR,
    PROMETHEUS_CONFIG,
    RULE_TESTS_DIR,
    alertmanager_config,
    dump_yaml,
    prometheus_config,
    rule_files,
)
from tests.fixtures.servers import require_binary

ALERTS = {
    "ModelStale", "ModelAccuracyBelowMinimum", "ModelAccuracyAboveMaximum", "DataDriftDetected",
    "ReportsStale", "ServingDown", "HighErrorRate", "HighLatencyP99", "PredictionLogBacklog",
}  # fmt: skip
SLACK = "https://hooks.slack.com/services/T/B/x"
KNOWN_METRICS = {v for k, v in vars(metric_names).items() if k.isupper()}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def rules() -> list[dict]:
    return [
        r for p in rule_files() for g in yaml.safe_load(p.read_text())["groups"] for r in g["rules"]
    ]


def test_promtool_check_config_passes() -> None:
    result = run(require_binary("promtool"), "check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_rules_passes() -> None:
    result = run(require_binary("promtool"), "check", "rules", *map(str, rule_files()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_rule_unit_tests_pass() -> None:
    tests = sorted(RULE_TESTS_DIR.glob("*.test.yml"))
    result = run(require_binary("promtool"), "test", "rules", *map(str, tests))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_fail_on_a_wrong_expectation(tmp_path: Path) -> None:
    # Guards the guard: a test file with a wrong threshold really fails.
    source = (RULE_TESTS_DIR / "lifecycle.test.yml").read_text()
    broken = source.replace("eval_time: 35h", "eval_time: 37h", 1)
    assert broken != source
    path = tmp_path / "broken.test.yml"
    path.write_text(broken.replace("../rules/", f"{MONITORING_DIR}/prometheus/rules/"))
    result = run(require_binary("promtool"), "test", "rules", str(path))
    assert result.returncode != 0
    assert "ModelStale" in result.stdout + result.stderr


def test_rule_unit_tests_cover_every_rule_firing_and_not_firing() -> None:
    firing, silent = set(), set()
    for path in RULE_TESTS_DIR.glob("*.test.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check["exp_alerts"] else silent).add(check["alertname"])
    names = {r["alert"] for r in rules()}
    assert names >= ALERTS
    assert firing == names
    assert silent == names


def test_every_rule_has_severity_annotations_and_a_runbook_entry() -> None:
    readme = (MONITORING_DIR / "README.md").read_text()
    headings = {m.lower() for m in re.findall(r"^### (\w+)", readme, flags=re.M)}
    for rule in rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert {"summary", "description", "runbook"} <= rule["annotations"].keys(), rule["alert"]
        anchor = rule["annotations"]["runbook"].split("#")[1]
        assert anchor == rule["alert"].lower() and anchor in headings, rule["alert"]
        section = readme.split(f"### {rule['alert']}")[1].split("\n### ")[0]
        for part in ("Meaning", "Likely causes", "What to do"):
            assert f"**{part}**" in section, (rule["alert"], part)


def _metric_tokens(text: str) -> set[str]:
    tokens = set(re.findall(r"\bmlops_[a-z_]+", text))
    return {re.sub(r"_(bucket|sum|count)$", "", t) for t in tokens}


def test_rules_and_dashboards_use_only_design_metric_names() -> None:
    text = "".join(p.read_text() for p in rule_files())
    text += "".join(p.read_text() for p in DASHBOARDS_DIR.glob("*.json"))
    used = _metric_tokens(text)
    assert used <= KNOWN_METRICS, used - KNOWN_METRICS
    # The serving metrics are all watched somewhere.
    serving = {
        metric_names.REQUESTS_TOTAL, metric_names.REQUEST_LATENCY_SECONDS,
        metric_names.PREDICTIONS_TOTAL, metric_names.MODEL_INFO, metric_names.PREDICTION_LOG_QUEUE,
        metric_names.PREDICTION_LOG_SPOOLED, metric_names.STREAM_RECORDS_IN_TOTAL,
        metric_names.STREAM_RECORDS_OUT_TOTAL, metric_names.STREAM_DEAD_LETTERS_TOTAL,
        metric_names.STREAM_BATCH_SECONDS, metric_names.STREAM_LAG_SECONDS,
    }  # fmt: skip
    assert serving <= used, serving - used


def test_stale_rule_threshold_is_36_hours_by_default() -> None:
    assert Settings().stale_after_hours == 36  # the exporter exports it; rules compare to it
    stale = next(r for r in rules() if r["alert"] == "ModelStale")
    assert "mlops_model_stale_after_seconds" in stale["expr"]
    assert "absent(mlops_model_last_trained_timestamp_seconds" in stale["expr"]


def test_rendered_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    config = prometheus_config(["127.0.0.1:8000"], ["127.0.0.1:9108"], ["127.0.0.1:9093"])
    path = dump_yaml(config, tmp_path / "prometheus.yml")
    result = run(require_binary("promtool"), "check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["api"]["metrics_path"] == "/metrics"
    assert jobs["exporter"]["static_configs"] == [{"targets": ["127.0.0.1:9108"]}]
    assert "stream" not in jobs  # no consumer given: no job that could only report up == 0


def test_rendered_prometheus_config_scrapes_the_stream_consumer_when_given(
    tmp_path: Path,
) -> None:
    config = prometheus_config(
        ["127.0.0.1:8000"], ["127.0.0.1:9108"], ["127.0.0.1:9093"],
        scrape_interval="1s", stream_targets=["127.0.0.1:9110"],
    )  # fmt: skip
    path = dump_yaml(config, tmp_path / "prometheus.yml")
    result = run(require_binary("promtool"), "check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["stream"]["static_configs"] == [{"targets": ["127.0.0.1:9110"]}]
    assert jobs["stream"]["metrics_path"] == "/metrics"


def test_shipped_prometheus_config_scrapes_api_and_exporter() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = {j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]}
    assert targets["api"] == ["api:8000"]
    assert targets["exporter"] == ["exporter:9108"]
    # Realistic shipped intervals (tests use their own 1 s copies).
    assert config["global"]["evaluation_interval"] == "30s"


@pytest.mark.parametrize(
    ("webhook", "email", "receivers"),
    [
        (SLACK, "ops@example.com", {"slack": "slack_configs", "email": "email_configs"}),
        (SLACK, None, {"slack": "slack_configs", "email": None}),
        (None, None, {"slack": None, "email": None}),
    ],
)  # fmt: skip
def test_alertmanager_config_renders_from_settings(
    tmp_path: Path, webhook: str | None, email: str | None, receivers: dict
) -> None:
    settings = Settings(alert_webhook_url=webhook, alert_email_to=email, smtp_smarthost="smtp:587")
    config = alertmanager_config(settings)
    path = dump_yaml(config, tmp_path / "alertmanager.yml")
    result = run(require_binary("amtool"), "check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    by_name = {r["name"]: r for r in config["receivers"]}
    for name, key in receivers.items():
        channels = [k for k in by_name[name] if k.endswith("_configs")]
        assert channels == ([key] if key else [])
    if webhook:
        assert by_name["slack"]["slack_configs"][0]["api_url"] == webhook
    if email:
        assert by_name["email"]["email_configs"][0]["to"] == email
    assert config["global"]["smtp_smarthost"] == "smtp:587"
    assert config["global"]["smtp_require_tls"] is True  # MLOPS_SMTP_REQUIRE_TLS=false: a relay


def test_alertmanager_routes_by_severity_with_daily_timings() -> None:
    config = alertmanager_config(
        Settings(alert_webhook_url="https://x.test/h", alert_email_to="a@b.c")
    )
    route = config["route"]
    assert route["receiver"] == "slack"
    assert route["repeat_interval"] == "24h" and route["group_interval"] == "10m"
    critical = route["routes"][0]
    assert critical == {"receiver": "email", "matchers": ['severity="critical"'],
                        "repeat_interval": "12h", "continue": True}  # fmt: skip
    assert route["routes"][1]["receiver"] == "slack"
    assert "${" in ALERTMANAGER_TEMPLATE.read_text()  # the shipped file stays a template


def test_alertmanager_config_escapes_quotes_in_values() -> None:
    config = alertmanager_config(Settings(alert_email_from='Ops "Team" <ops@example.com>'))
    assert config["global"]["smtp_from"] == 'Ops "Team" <ops@example.com>'


def _dashboard(name: str) -> dict:
    return json.loads((DASHBOARDS_DIR / name).read_text())


def _exprs(panel: dict) -> str:
    return " ".join(t["expr"] for t in panel.get("targets", []))  # a row has none


def test_model_quality_dashboard_has_the_required_panels() -> None:
    dash = _dashboard("model-quality.json")
    panels = {p["title"]: p for p in dash["panels"]}
    quality = panels["Test and live $metric over time"]
    assert 'dataset="test"' in _exprs(quality) and 'dataset="live"' in _exprs(quality)
    # The metric picker opens on the binary default, the metric the gate ranks by.
    assert dash["templating"]["list"][0]["current"]["value"] == "roc_auc"
    estimated = _exprs(panels["Estimated $metric without labels vs live"])
    assert 'dataset="estimated"' in estimated and "mlops_model_metric_estimate_bound" in estimated
    assert "mlops_model_concept_drift_suspected" in _exprs(panels["Concept drift suspected"])
    assert "avg_over_time(mlops_model_metric" in _exprs(panels["7-day average (live, else test)"])
    assert "[7d])" in _exprs(panels["7-day average (live, else test)"])
    assert panels["Champion version"]["type"] == "state-timeline"
    assert any(
        "mlops_model_alias_version" in a.get("expr", "") for a in dash["annotations"]["list"]
    )
    age = _exprs(panels["Champion age vs stale threshold (hours)"])
    assert "mlops_model_last_trained_timestamp_seconds" in age
    assert "mlops_model_stale_after_seconds" in age  # the 36 h line
    assert "mlops_data_drift_share" in _exprs(panels["Data drift share"])


def test_service_dashboard_has_the_required_panels() -> None:
    panels = {p["title"]: _exprs(p) for p in _dashboard("service.json")["panels"]}
    assert "rate(mlops_requests_total" in panels["Request rate"]
    assert 'status=~"5.."' in panels["Error ratio (5xx)"]
    latency = panels["Latency p50 / p95 / p99"]
    assert all(f"histogram_quantile({q}" in latency for q in ("0.50", "0.95", "0.99"))
    assert "by (label)" in panels["Predictions per class"]
    queue = panels["Prediction log queue and spool"]
    assert "mlops_prediction_log_queue" in queue and "mlops_prediction_log_spooled" in queue
    flow = panels["Stream records in / out / dead-lettered"]
    assert "by (model_version)" in flow and "by (reason)" in flow
    lag = panels["Stream lag and batch latency"]
    assert "mlops_stream_lag_seconds" in lag and "mlops_stream_batch_seconds_bucket" in lag


def test_grafana_provisioning_matches_the_dashboards() -> None:
    datasource = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    provider = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "dashboards" / "lifecycle.yml").read_text()
    )["providers"][0]
    assert datasource["type"] == "prometheus"
    assert provider["type"] == "file"
    uids = set()
    for path in DASHBOARDS_DIR.glob("*.json"):
        dash = json.loads(path.read_text())
        uids.add(dash["uid"])
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for panel in dash["panels"]:
            if panel["type"] == "row":  # a section heading: no query of its own
                continue
            assert panel["datasource"]["uid"] == datasource["uid"], (path.name, panel["title"])
            assert panel["targets"] and all(t["expr"] for t in panel["targets"])
    assert len(uids) == 2


def test_prometheus_config_command_adds_the_stream_job_and_names_a_bad_target(
    tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from ops.cli import build_app

    out = tmp_path / "prometheus.yml"
    result = CliRunner().invoke(
        build_app(), ["prometheus-config", "-o", str(out), "--stream", "127.0.0.1:9110"]
    )
    assert result.exit_code == 0, result.output
    jobs = {j["job_name"]: j for j in yaml.safe_load(out.read_text())["scrape_configs"]}
    assert jobs["stream"]["static_configs"] == [{"targets": ["127.0.0.1:9110"]}]
    bad = CliRunner().invoke(build_app(), ["prometheus-config", "-o", str(out), "--stream", "x"])
    assert bad.exit_code == 2
    assert "--stream" in bad.output and "host:port" in bad.output
