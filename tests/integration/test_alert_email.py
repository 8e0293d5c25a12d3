"""Alert e-mail, delivered: the exporter -> a real Prometheus on the shipped rules -> a real
Alertmanager on the config `mlops alertmanager-config` renders -> a real SMTP server on loopback
(aiosmtpd), where the message is read back and checked as a person would read it."""

from __future__ import annotations

import contextlib
import email
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest

from lifecycle.core.settings import Settings
from lifecycle.core.waiting import wait_until
from monitoring.config import alertmanager_config, prometheus_config, rule_files
from monitoring.exporter import serve_exporter
from tests.fixtures.monitoring import (
    hours_ago,
    register_version,
    seed_report,
    short_rules,
    start_alertmanager,
    start_prometheus,
)
from tests.fixtures.servers import free_port, own_mongo

pytestmark = pytest.mark.integration

RECIPIENT = "oncall@example.com"
SENDER = "lifecycle@example.com"


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps every message it is given."""

    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def about(self, alertname: str) -> list[tuple[list[str], EmailMessage]]:
        with self.lock:
            return [(to, m) for to, m in self.messages if alertname in str(m["Subject"])]


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    """A plain SMTP server on loopback (no STARTTLS, no AUTH), as a local relay would be."""
    from aiosmtpd.controller import Controller

    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def _seed(settings: Settings) -> None:
    """A fresh champion (version 1) whose live accuracy in the latest report, 0.89, is below
    MLOPS_MIN_METRIC: ModelAccuracyBelowMinimum (critical, so e-mailed) and nothing else."""
    metrics = {"accuracy": 0.97, "f1": 0.9}
    register_version(settings.mlflow_tracking_uri, settings.model_name, hours_ago(1), "champion",
                     metrics)  # fmt: skip
    seed_report(settings.mongo_uri, settings.mongo_db, settings.model_name, "1")


@pytest.fixture(scope="module")
def mailbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mailbox]:
    work = tmp_path_factory.mktemp("alert-email")
    home = work / "mlops"
    home.mkdir()
    with contextlib.ExitStack() as cleanup:  # whatever started is stopped, even on a failure
        box, smtp_port = cleanup.enter_context(smtp_server())
        mongo = cleanup.enter_context(own_mongo(work / "mongo"))
        settings = Settings(
            home=home,
            mlflow_tracking_uri_override=f"sqlite:///{home / 'mlflow.db'}",
            model_name="churn",
            mongo_uri=mongo.uri,
            mongo_db=f"t{uuid.uuid4().hex[:10]}",
            min_metric=0.95,
            alert_email_to=RECIPIENT,
            alert_email_from=SENDER,
            smtp_smarthost=f"127.0.0.1:{smtp_port}",
            smtp_require_tls=False,  # aiosmtpd here offers no STARTTLS
        )
        _seed(settings)
        exporter = serve_exporter("127.0.0.1", 0, settings, cache_seconds=1, budget_seconds=2)
        cleanup.callback(exporter.close)
        # The config as users render it; only the route's waits are shortened.
        config = alertmanager_config(settings, group_wait="1s", group_interval="1s")
        alertmanager = start_alertmanager(config, work / "alertmanager")
        cleanup.callback(alertmanager.stop)
        prometheus = _start_prometheus(work, exporter.port, alertmanager.port)
        cleanup.callback(prometheus.stop)
        yield box


def _start_prometheus(work: Path, exporter_port: int, alertmanager_port: int) -> Any:
    """The shipped rules (`for:` shortened to 1 s), no API target (so no ServingDown)."""
    config = prometheus_config(
        [],
        [f"127.0.0.1:{exporter_port}"],
        [f"127.0.0.1:{alertmanager_port}"],
        scrape_interval="1s",
        evaluation_interval="1s",
    )
    config["rule_files"] = [str(p) for p in short_rules(rule_files(), work, for_duration="1s")]
    return start_prometheus(config, work / "prometheus")


def test_alert_email_arrives_naming_model_version_value_and_runbook(mailbox: Mailbox) -> None:
    # Nominally ~5 s (1 s scrapes, evaluation and `for:`, a 1 s group wait); 90 s covers
    # Prometheus and Alertmanager starting while the two CPUs run other tests.
    [(recipients, message), *_] = wait_until(
        lambda: mailbox.about("ModelAccuracyBelowMinimum"),
        "the ModelAccuracyBelowMinimum e-mail",
        90,
        interval=0.25,
    )
    assert recipients == [RECIPIENT]
    assert message["To"] == RECIPIENT and message["From"] == SENDER
    assert message["Subject"] == "[FIRING] ModelAccuracyBelowMinimum (churn)"
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "ModelAccuracyBelowMinimum [firing, critical]" in text
    assert "Model: churn, version 1" in text
    assert "live accuracy of churn version 1 is 0.8900, below MLOPS_MIN_METRIC" in text
    assert "Runbook: monitoring/README.md#modelaccuracybelowminimum" in text
    assert message.get_body(preferencelist=("html",)) is not None  # Alertmanager's default
    # Only critical alerts are e-mailed: nothing else fires here, and warnings never would.
    subjects = {str(m["Subject"]) for _, m in mailbox.messages}
    assert subjects == {"[FIRING] ModelAccuracyBelowMinimum (churn)"}
