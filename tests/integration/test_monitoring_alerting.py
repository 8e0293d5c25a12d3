"""End to end: exporter -> real Prometheus (shipped rules) -> real Alertmanager (shipped routes)
-> a webhook on loopback; and every PromQL expression of the rules and dashboards run for real."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from lifecycle.core.settings import Settings
from lifecycle.core.waiting import wait_until
from monitoring.config import (
    DASHBOARDS_DIR,
    alertmanager_config,
    prometheus_config,
    rule_files,
)
from monitoring.exporter import ExporterServer, serve_exporter
from tests.fixtures.monitoring import (
    Daemon,
    WebhookReceiver,
    hours_ago,
    http_get_json,
    register_version,
    seed_report,
    short_rules,
    start_alertmanager,
    start_prometheus,
    start_webhook_receiver,
)
from tests.fixtures.servers import free_port, own_mongo

pytestmark = pytest.mark.integration

WEBHOOK_PATH = "/slack"


@dataclass
class Stack:
    settings: Settings
    exporter: ExporterServer
    prometheus: Daemon
    alertmanager: Daemon
    receiver: WebhookReceiver
    started: float  # time.monotonic() when Prometheus started

    def query(self, expr: str) -> dict:
        url = f"{self.prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            return http_get_json(url)
        except urllib.error.HTTPError as exc:  # 400 carries the PromQL error as JSON
            return json.loads(exc.read())


def _seed(settings: Settings) -> None:
    """A champion trained 40 h ago (past the 36 h threshold) and a fresh, quiet report."""
    uri, name = settings.mlflow_tracking_uri, settings.model_name
    register_version(uri, name, hours_ago(64), "previous", {"accuracy": 0.86})
    metrics = {"accuracy": 0.91, "f1": 0.84, "roc_auc": 0.95, "log_loss": 0.3}
    register_version(uri, name, hours_ago(40), "champion", metrics)
    seed_report(
        settings.mongo_uri, settings.mongo_db, name, "2",
        drift_share=0.1, drifted_columns=["tenure"], metrics={"accuracy": 0.89, "f1": 0.8},
    )  # fmt: skip


def _start_prometheus(work: Path, exporter: ExporterServer, alertmanager: Daemon) -> Daemon:
    """Prometheus on the shipped rules (`for:` shortened), scraping every second."""
    config = prometheus_config(
        [f"127.0.0.1:{free_port()}"],  # no API here: ServingDown's input, up == 0
        [f"127.0.0.1:{exporter.port}"],
        [f"127.0.0.1:{alertmanager.port}"],
        scrape_interval="1s",
        evaluation_interval="1s",
    )
    config["rule_files"] = [str(p) for p in short_rules(rule_files(), work, for_duration="1s")]
    return start_prometheus(config, work / "prometheus")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("alerting")
    home = work / "mlops"
    home.mkdir()
    with contextlib.ExitStack() as cleanup:  # whatever started is stopped, even on a failure
        receiver, stop_receiver = start_webhook_receiver()
        cleanup.callback(stop_receiver)
        mongo_server = cleanup.enter_context(own_mongo(work / "mongo"))
        settings = Settings(
            home=home,
            mlflow_tracking_uri_override=f"sqlite:///{home / 'mlflow.db'}",
            model_name="churn",
            mongo_uri=mongo_server.uri,
            mongo_db=f"t{uuid.uuid4().hex[:10]}",
            alert_webhook_url=receiver.url(WEBHOOK_PATH),
            stale_after_hours=36,
        )
        _seed(settings)
        exporter = serve_exporter("127.0.0.1", 0, settings, cache_seconds=1, budget_seconds=2)
        cleanup.callback(exporter.close)
        alertmanager = start_alertmanager(
            # Test-only timings; the shipped ones wait minutes and repeat daily.
            alertmanager_config(
                settings, group_wait="1s", group_interval="1s", repeat_interval="1h"
            ),
            work / "alertmanager",
        )
        cleanup.callback(alertmanager.stop)
        started = time.monotonic()
        prometheus = _start_prometheus(work, exporter, alertmanager)
        cleanup.callback(prometheus.stop)
        yield Stack(settings, exporter, prometheus, alertmanager, receiver, started)


def _slack_titles(receiver: WebhookReceiver) -> list[str]:
    return [
        attachment.get("title", "")
        for body in receiver.bodies(WEBHOOK_PATH)
        if isinstance(body, dict)
        for attachment in body.get("attachments", [])
    ]


def test_model_stale_alert_reaches_webhook(stack: Stack) -> None:
    # Nominally ~5 s (1 s scrapes, evaluation and `for:`, Alertmanager's 1 s group wait); 90 s
    # covers Prometheus and Alertmanager starting up while the two CPUs run other tests.
    titles = wait_until(
        lambda: [t for t in _slack_titles(stack.receiver) if "ModelStale" in t],
        "ModelStale to reach the webhook",
        90,
        interval=0.25,
    )
    elapsed = time.monotonic() - stack.started
    print(f"ModelStale reached the webhook {elapsed:.1f}s after Prometheus started")
    assert titles[0].startswith("[FIRING]")
    assert "(churn)" in titles[0]
    body = next(b for b in stack.receiver.bodies(WEBHOOK_PATH) if "ModelStale" in json.dumps(b))
    text = body["attachments"][0]["text"]
    assert "The champion of churn was trained 1d 16h" in text  # 40 h, from the registry tag
    assert "monitoring/README.md#modelstale" in text

    # Prometheus holds the alert with the exporter's labels; the fresh report raises nothing.
    alerts = http_get_json(f"{stack.prometheus.url}/api/v1/alerts")["data"]["alerts"]
    firing = {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}
    assert "ModelStale" in firing
    assert {"ReportsStale", "DataDriftDetected", "ModelAccuracyBelowMinimum"}.isdisjoint(firing)
    stale = next(a for a in alerts if a["labels"]["alertname"] == "ModelStale")
    assert stale["labels"] == {
        "alertname": "ModelStale",
        "alias": "champion",
        "model_name": "churn",
        "severity": "warning",
        "job": "exporter",
        "instance": f"127.0.0.1:{stack.exporter.port}",
    }


def _rule_expressions() -> list[tuple[str, str]]:
    found = []
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            found += [(f"rule {r['alert']}", r["expr"]) for r in group["rules"]]
    return found


def _dashboard_expressions() -> list[tuple[str, str]]:
    found = []
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        dashboard = json.loads(path.read_text())
        # Grafana variables get their default value, as on first load of the dashboard.
        defaults = {f"${v['name']}": v["current"]["value"] for v in dashboard["templating"]["list"]}
        items = [
            (f"{path.stem}: {p['title']}", t["expr"])
            for p in dashboard["panels"]
            for t in p.get("targets", [])  # a row panel is a heading, with no query
        ]
        items += [
            (f"{path.stem}: annotation {a['name']}", a["expr"])
            for a in dashboard["annotations"]["list"]
            if "expr" in a
        ]
        for where, expr in items:
            for name, value in defaults.items():
                expr = expr.replace(name, value)
            found.append((where, expr))
    return found


def test_every_promql_expression_runs_without_error(stack: Stack) -> None:
    # Wait until the exporter's figures are in, so expressions run against real series.
    # A few 1 s scrapes nominally; 60 s covers a slow first read of the stores under load.
    wait_until(
        lambda: stack.query("mlops_model_metric")["data"]["result"],
        "the exporter's mlops_model_metric series in Prometheus",
        60,
        interval=0.25,
    )
    expressions = _rule_expressions() + _dashboard_expressions()
    assert len(expressions) >= 30
    assert stack.query("sum(")["status"] == "error"  # the check does see PromQL errors
    errors = {}
    for where, expr in expressions:
        answer = stack.query(expr)
        if answer.get("status") != "success":
            errors[where] = answer.get("error")
    assert errors == {}

    # The model-quality panels are backed by data, not just valid syntax.
    def value(expr: str) -> float:
        return float(stack.query(expr)["data"]["result"][0]["value"][1])

    age_hours = value(
        '(time() - mlops_model_last_trained_timestamp_seconds{alias="champion"}) / 3600'
    )
    assert 40 <= age_hours < 40.5
    assert value("mlops_model_stale_after_seconds / 3600") == 36
    assert value('avg_over_time(mlops_model_metric{dataset="live", metric="accuracy"}[7d])') == 0.89
    assert value('mlops_model_alias_version{alias="champion"}') == 2
    assert value("mlops_data_drift_share") == 0.1
