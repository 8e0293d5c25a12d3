"""Rendering the shipped Prometheus and Alertmanager files for a concrete deployment.

The files in `monitoring/prometheus/` and `monitoring/alertmanager/` are the source of truth;
these functions only fill in what differs per machine (targets, addresses from the settings),
so tests and `make up` run exactly the shipped rules, routes and templates.
"""

from __future__ import annotations

from pathlib import Path
from string import Template
from typing import Any

import yaml

from lifecycle.core.settings import Settings, get_settings

MONITORING_DIR = Path(__file__).resolve().parent
PROMETHEUS_CONFIG = MONITORING_DIR / "prometheus" / "prometheus.yml"
RULES_DIR = MONITORING_DIR / "prometheus" / "rules"
RULE_TESTS_DIR = MONITORING_DIR / "prometheus" / "tests"
ALERTMANAGER_TEMPLATE = MONITORING_DIR / "alertmanager" / "alertmanager.yml"
GRAFANA_DIR = MONITORING_DIR / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.rules.yml"))


def prometheus_config(
    api_targets: list[str],
    exporter_targets: list[str],
    alertmanager_targets: list[str],
    scrape_interval: str | None = None,
    evaluation_interval: str | None = None,
    stream_targets: list[str] | None = None,
) -> dict[str, Any]:
    """The shipped Prometheus config with other targets and absolute rule paths.

    The `stream` job (the Kinesis consumer's /metrics) is kept only with `stream_targets`:
    without a consumer its target would only ever report up == 0.
    """
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["rule_files"] = [str(path) for path in rule_files()]
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": alertmanager_targets}]}]
    targets = {"api": api_targets, "exporter": exporter_targets}
    if stream_targets:
        targets["stream"] = stream_targets
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] in targets:
            job["static_configs"] = [{"targets": targets[job["job_name"]]}]
            if scrape_interval:
                # A per-job interval must not exceed the global one's override.
                job.pop("scrape_interval", None)
                job.pop("scrape_timeout", None)
            jobs.append(job)
    config["scrape_configs"] = jobs  # the self-scrape job needs to know Prometheus' own port
    if scrape_interval:
        config["global"]["scrape_interval"] = scrape_interval
        config["global"]["scrape_timeout"] = scrape_interval
    if evaluation_interval:
        config["global"]["evaluation_interval"] = evaluation_interval
    return config


def alertmanager_config(settings: Settings | None = None, **route_overrides: str) -> dict[str, Any]:
    """The shipped Alertmanager template filled from the settings.

    A receiver whose address is unset keeps no channel (Alertmanager then drops its alerts
    quietly); `route_overrides` (e.g. group_wait="1s") replace top-level route timings, which
    only tests should need.
    """
    settings = settings or get_settings()
    values = {
        "MLOPS_ALERT_WEBHOOK_URL": settings.alert_webhook_url or "",
        "MLOPS_ALERT_EMAIL_TO": settings.alert_email_to or "",
        "MLOPS_ALERT_EMAIL_FROM": settings.alert_email_from,
        "MLOPS_SMTP_SMARTHOST": settings.smtp_smarthost,
        "MLOPS_SMTP_USERNAME": settings.smtp_username or "",
        "MLOPS_SMTP_PASSWORD": settings.smtp_password or "",
        "MLOPS_SMTP_REQUIRE_TLS": "true" if settings.smtp_require_tls else "false",
    }
    # Values are quoted in the template; escape what would end a YAML double-quoted string.
    escaped = {k: v.replace("\\", "\\\\").replace('"', '\\"') for k, v in values.items()}
    config = yaml.safe_load(Template(ALERTMANAGER_TEMPLATE.read_text()).substitute(escaped))
    glob = config["global"]
    for key in ("smtp_auth_username", "smtp_auth_password"):
        if not glob.get(key):
            glob.pop(key, None)
    for receiver in config["receivers"]:
        if not settings.alert_webhook_url:
            receiver.pop("slack_configs", None)
        if not settings.alert_email_to:
            receiver.pop("email_configs", None)
    config["route"].update(route_overrides)
    return config


def dump_yaml(config: dict[str, Any], path: Path) -> Path:
    """Write a rendered config; the header says where it came from, so nobody edits the copy."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Rendered by Lifecycle from monitoring/; edit the source there, not this copy.\n"
    path.write_text(header + yaml.safe_dump(config, sort_keys=False, width=100))
    return path
