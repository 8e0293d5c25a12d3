"""The Lifecycle exporter: registry and report figures as Prometheus metrics (`mlops exporter`).

A custom collector reads on scrape, but never makes a scrape wait on a slow store: each source
(`registry` = MLflow, `reports` = MongoDB) is read in its own daemon thread, at most once per
`cache_seconds`, and a scrape waits at most `budget_seconds` for a read in flight. A source that
fails or is too slow is reported by `mlops_exporter_source_up{source}` = 0 and its figures are
left out (so `absent()` rules fire); the other source's figures are still exported, and the
endpoint answers 200 whatever the stores do.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lifecycle import metric_names as names
from lifecycle.settings import Settings, Task, get_settings

log = logging.getLogger(__name__)

ALIASES = ("champion", "challenger", "previous")
REGISTRY = "registry"
REPORTS = "reports"
# Tags of a model version that hold metric values (DESIGN.md, MLflow conventions).
METRIC_TAGS = ("accuracy", "f1", "roc_auc", "log_loss", "rmse", "mae", "r2")
REGRESSION_METRICS = frozenset({"rmse", "mae", "r2"})

# name -> (help, label names) of every family this exporter can emit.
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    names.MODEL_LAST_TRAINED_TIMESTAMP_SECONDS: (
        "Unix time the model version behind each alias was trained (its trained_at tag).",
        ("model_name", "alias"),
    ),
    names.MODEL_ALIAS_VERSION: (
        "Registered version number each alias points at.",
        ("model_name", "alias"),
    ),
    names.MODEL_METRIC: (
        "Model quality: dataset=test from the champion's tags, dataset=live from the last report.",
        ("model_name", "model_version", "metric", "dataset"),
    ),
    names.DATA_DRIFT_SHARE: (
        "Share of drifted feature columns in the latest report.",
        ("model_name",),
    ),
    names.REPORT_LAST_TIMESTAMP_SECONDS: (
        "Unix time the latest report was created.",
        ("model_name",),
    ),
    names.MODEL_METRIC_THRESHOLD: (
        "Alert bounds of the primary metric (MLOPS_MIN_METRIC / MLOPS_MAX_METRIC).",
        ("model_name", "metric", "bound"),
    ),
    names.MODEL_STALE_AFTER_SECONDS: (
        "Champion age that raises ModelStale (MLOPS_STALE_AFTER_HOURS).",
        ("model_name",),
    ),
    names.DATA_DRIFT_THRESHOLD: (
        "Drift share that raises DataDriftDetected (MLOPS_DRIFT_THRESHOLD).",
        ("model_name",),
    ),
    names.REPORT_WINDOW_SECONDS: (
        "Window each report covers (MLOPS_REPORT_WINDOW); ReportsStale fires after two.",
        ("model_name",),
    ),
    names.EXPORTER_SOURCE_UP: (
        "1 when the last read of the source succeeded within the scrape budget, else 0.",
        ("source",),
    ),
    names.EXPORTER_SOURCE_READ_SECONDS: (
        "How long the last completed read of the source took.",
        ("source",),
    ),
    names.EXPORTER_SOURCE_LAST_SUCCESS_TIMESTAMP_SECONDS: (
        "Unix time of the last successful read of the source.",
        ("source",),
    ),
}


@dataclass(frozen=True)
class Sample:
    """One value of one metric family."""

    name: str
    labels: dict[str, str]
    value: float


@dataclass
class Reading:
    """The outcome of one read of a source."""

    ok: bool
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None
    duration: float = 0.0
    finished_at: float = 0.0  # time.time()
    context: dict[str, Any] = field(default_factory=dict)  # facts other parts reuse (task)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_seconds(text: str) -> float:
    """'3h' -> 10800.0; accepts s, m, h, d, w (a bare number is seconds)."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (expected e.g. 90s, 30m, 3h, 1d)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def timestamp_seconds(value: Any) -> float | None:
    """A datetime or an ISO 8601 string as Unix seconds (naive values are UTC), else None."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
        return aware.timestamp()
    return None


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def read_registry(settings: Settings) -> Reading:
    """Alias versions, their training times, and the champion's test metrics from MLflow."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    name = settings.model_name
    try:
        aliases = dict(client.get_registered_model(name).aliases)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return Reading(ok=True)  # no model registered yet: a fact, not an outage
        raise
    samples: list[Sample] = []
    context: dict[str, Any] = {}
    for alias in ALIASES:
        if alias not in aliases:
            continue
        version = client.get_model_version(name, aliases[alias])
        labels = {"model_name": name, "alias": alias}
        samples.append(Sample(names.MODEL_ALIAS_VERSION, labels, float(version.version)))
        trained = timestamp_seconds(version.tags.get("trained_at"))
        if trained is None and version.creation_timestamp:
            trained = version.creation_timestamp / 1000  # registered before tags existed
        if trained is not None:
            samples.append(Sample(names.MODEL_LAST_TRAINED_TIMESTAMP_SECONDS, labels, trained))
        if alias != "champion":
            continue
        context.update(
            task=version.tags.get("task"), primary_metric=version.tags.get("primary_metric")
        )
        for metric in METRIC_TAGS:
            value = _number(version.tags.get(metric))
            if value is not None:
                samples.append(
                    Sample(
                        names.MODEL_METRIC,
                        {
                            "model_name": name,
                            "model_version": str(version.version),
                            "metric": metric,
                            "dataset": "test",
                        },
                        value,
                    )
                )
    return Reading(ok=True, samples=samples, context=context)


class ReportsReader:
    """Reads the latest `reports` document; keeps one pymongo client (it pools connections)."""

    def __init__(self, settings: Settings, timeout_ms: int = 1500) -> None:
        self.settings = settings
        self.timeout_ms = timeout_ms
        self._store: Any = None

    def __call__(self) -> Reading:
        from lifecycle.store import PredictionStore

        if self._store is None:
            self._store = PredictionStore(
                self.settings.mongo_uri, self.settings.mongo_db, self.timeout_ms
            )
        name = self.settings.model_name
        report = self._store.latest_report(name)
        if report is None:
            return Reading(ok=True)
        samples: list[Sample] = []
        version = str(report.get("model_version", ""))
        for metric, raw in (report.get("metrics") or {}).items():
            value = _number(raw)
            if value is not None:
                samples.append(
                    Sample(
                        names.MODEL_METRIC,
                        {
                            "model_name": name,
                            "model_version": version,
                            "metric": str(metric),
                            "dataset": "live",
                        },
                        value,
                    )
                )
        drift = _number(report.get("drift_share"))
        if drift is not None:
            samples.append(Sample(names.DATA_DRIFT_SHARE, {"model_name": name}, drift))
        created = timestamp_seconds(report.get("created_at") or report.get("window_end"))
        if created is not None:
            samples.append(
                Sample(names.REPORT_LAST_TIMESTAMP_SECONDS, {"model_name": name}, created)
            )
        return Reading(
            ok=True, samples=samples, context={"primary_metric": report.get("primary_metric")}
        )

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


class CachedSource:
    """One source read in the background at most every `ttl` seconds; see the module docstring."""

    def __init__(self, name: str, read: Callable[[], Reading], ttl: float, budget: float) -> None:
        self.name = name
        self._read = read
        self.ttl = ttl
        self.budget = budget
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._last: Reading | None = None
        self._last_good: Reading | None = None
        self._started: float | None = None  # monotonic start of the read in flight

    @property
    def thread_name(self) -> str:
        """Name of this source's reader thread (unique per exporter, for logs and tests)."""
        return f"exporter-{self.name}-{id(self):x}"

    def _run(self) -> None:
        start = time.monotonic()
        try:
            reading = self._read()
        except Exception as exc:  # any failure of a store is reported as up=0, never raised
            log.warning("exporter: reading %s failed: %s", self.name, exc)
            reading = Reading(ok=False, error=f"{type(exc).__name__}: {exc}")
        reading.duration = time.monotonic() - start
        reading.finished_at = time.time()
        with self._done:
            self._last = reading
            if reading.ok:
                self._last_good = reading
            self._started = None
            self._done.notify_all()

    def get(self) -> tuple[bool, Reading | None]:
        """(up, reading whose samples to export) after waiting at most `budget` seconds."""
        with self._done:
            now = time.monotonic()
            fresh = self._last is not None and time.time() - self._last.finished_at < self.ttl
            if self._started is None and not fresh:
                self._started = now
                threading.Thread(target=self._run, name=self.thread_name, daemon=True).start()
            if self._started is not None:
                self._done.wait_for(lambda: self._started is None, timeout=self.budget)
            if self._started is not None and time.monotonic() - self._started >= self.budget:
                # A read is hanging: say so, but keep showing figures that are still recent.
                good = self._last_good
                recent = good is not None and time.time() - good.finished_at < 4 * self.ttl
                return False, good if recent else None
            last = self._last
            if last is None or not last.ok:
                return False, last
            return True, last


class LifecycleCollector(Collector):
    """Collects registry and report figures plus the alert thresholds from the settings."""

    def __init__(
        self,
        settings: Settings | None = None,
        cache_seconds: float = 10.0,
        budget_seconds: float = 2.0,
    ) -> None:
        self.settings = settings or get_settings()
        self.reports_reader = ReportsReader(self.settings)
        self.sources = [
            CachedSource(
                REGISTRY, lambda: read_registry(self.settings), cache_seconds, budget_seconds
            ),
            CachedSource(REPORTS, self.reports_reader, cache_seconds, budget_seconds),
        ]

    def describe(self) -> Iterator[Metric]:
        # Describing without collecting keeps registration from touching the stores.
        for name, (doc, labels) in FAMILIES.items():
            yield GaugeMetricFamily(name, doc, labels=labels)

    def collect(self) -> Iterator[Metric]:
        try:
            samples = self._samples()
        except Exception:  # a bug here must not turn a scrape into a 500; it is logged
            log.exception("exporter: collect failed")
            samples = [
                Sample(names.EXPORTER_SOURCE_UP, {"source": s.name}, 0) for s in self.sources
            ]
        families = {
            name: GaugeMetricFamily(name, doc, labels=labels)
            for name, (doc, labels) in FAMILIES.items()
        }
        for sample in samples:
            labels = FAMILIES[sample.name][1]
            families[sample.name].add_metric([sample.labels[k] for k in labels], sample.value)
        yield from (family for family in families.values() if family.samples)

    def _samples(self) -> list[Sample]:
        samples: list[Sample] = []
        context: dict[str, Any] = {}
        for source in self.sources:
            up, reading = source.get()
            samples.append(Sample(names.EXPORTER_SOURCE_UP, {"source": source.name}, float(up)))
            if reading is not None:
                samples.append(
                    Sample(
                        names.EXPORTER_SOURCE_READ_SECONDS,
                        {"source": source.name},
                        reading.duration,
                    )
                )
            good = source._last_good
            if good is not None:
                samples.append(
                    Sample(
                        names.EXPORTER_SOURCE_LAST_SUCCESS_TIMESTAMP_SECONDS,
                        {"source": source.name},
                        good.finished_at,
                    )
                )
            if reading is not None and (up or reading.ok):
                samples.extend(reading.samples)
                for key, value in reading.context.items():
                    context.setdefault(key, value)
        return samples + self._threshold_samples(context)

    def _threshold_samples(self, context: dict[str, Any]) -> list[Sample]:
        """The settings' alert thresholds for the model's primary metric."""
        settings = self.settings
        model = {"model_name": settings.model_name}
        metric = context.get("primary_metric") or settings.primary_metric_override
        task: Task | None = context.get("task") or settings.task
        if task not in ("binary", "multiclass", "regression"):
            task = "regression" if metric in REGRESSION_METRICS else "binary"
        metric = metric or settings.primary_metric(task)
        samples = [
            Sample(names.MODEL_STALE_AFTER_SECONDS, model, settings.stale_after_hours * 3600),
            Sample(names.DATA_DRIFT_THRESHOLD, model, settings.drift_threshold),
        ]
        try:
            samples.append(
                Sample(names.REPORT_WINDOW_SECONDS, model, duration_seconds(settings.report_window))
            )
        except ValueError as exc:
            log.warning("exporter: MLOPS_REPORT_WINDOW: %s", exc)
        low, high = settings.metric_bounds(task)
        for bound, value in (("min", low), ("max", high)):
            if value is not None:
                samples.append(
                    Sample(
                        names.MODEL_METRIC_THRESHOLD,
                        {**model, "metric": metric, "bound": bound},
                        value,
                    )
                )
        return samples

    def close(self) -> None:
        self.reports_reader.close()


@dataclass
class ExporterServer:
    """A running exporter HTTP server (prometheus-client's threaded server)."""

    host: str
    port: int
    collector: LifecycleCollector
    _server: Any
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        self.collector.close()


def serve_exporter(
    host: str = "127.0.0.1",
    port: int = 9108,
    settings: Settings | None = None,
    cache_seconds: float = 10.0,
    budget_seconds: float = 2.0,
) -> ExporterServer:
    """Start the exporter's /metrics endpoint in a background thread and return its handle."""
    collector = LifecycleCollector(settings, cache_seconds, budget_seconds)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    server, thread = start_http_server(port, addr=host, registry=registry)
    return ExporterServer(host, server.server_address[1], collector, server, thread)
