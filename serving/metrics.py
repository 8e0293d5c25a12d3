"""The API's Prometheus metrics (names from `lifecycle.core.metric_names`).

Each app owns its metrics in its own registry, so several apps (tests) never collide. With
several uvicorn workers, set PROMETHEUS_MULTIPROC_DIR (`mlops serve --workers N` does): values
then live in shared files and /metrics sums the workers through a MultiProcessCollector.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from lifecycle.core import metric_names as names
from lifecycle.core.errors import UnseenCategoryError

# Tuned for a fast API: most one-row requests take 1-5 ms, batches up to seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNSEEN_HELP = (
    "Categorical values the model never saw, by feature: rejected or scored as missing "
    "(MLOPS_UNSEEN_CATEGORY)."
)


class ServingMetrics:
    """Counters, histograms and gauges of one app."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, multiproc_dir: Path | None = None) -> None:
        self.multiproc_dir = multiproc_dir
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.requests = Counter(
            names.REQUESTS_TOTAL,
            "HTTP requests by route and status.",
            ["endpoint", "status"],
            registry=reg,
        )
        self.latency = Histogram(
            names.REQUEST_LATENCY_SECONDS,
            "Request latency by route.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.predictions = Counter(
            names.PREDICTIONS_TOTAL,
            "Predicted rows by model version and label.",
            ["model_version", "label"],
            registry=reg,
        )
        self.model_info = Gauge(
            names.MODEL_INFO,
            "The model being served (value 1).",
            ["model_name", "model_version", "alias"],
            registry=reg,
            multiprocess_mode="max",
        )
        self.model_loaded = Gauge(
            names.MODEL_LOADED_TIMESTAMP_SECONDS,
            "When the served model was loaded (Unix time).",
            ["model_name"],
            registry=reg,
            multiprocess_mode="max",
        )
        self.reloads = Counter(
            names.MODEL_RELOADS_TOTAL, "Model loads by result.", ["result"], registry=reg
        )
        self.log_queue = Gauge(
            names.PREDICTION_LOG_QUEUE,
            "Prediction log documents on their way to MongoDB (in memory or the journal).",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.log_spooled = Gauge(
            names.PREDICTION_LOG_SPOOLED,
            "Prediction log documents held in the journal while MongoDB is unreachable.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.unseen = Counter(names.UNSEEN_CATEGORY_TOTAL, UNSEEN_HELP, ["feature"], registry=reg)
        for result in ("success", "failure"):
            self.reloads.labels(result=result)
        # Pre-bound children keep the per-request cost to one dict lookup.
        self._request_children: dict[tuple[str, int], Any] = {}
        self._latency_children: dict[str, Any] = {}
        self._prediction_children: dict[tuple[str, str], Any] = {}

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        child = self._request_children.get((endpoint, status))
        if child is None:
            child = self.requests.labels(endpoint=endpoint, status=str(status))
            self._request_children[(endpoint, status)] = child
        child.inc()
        hist = self._latency_children.get(endpoint)
        if hist is None:
            hist = self._latency_children[endpoint] = self.latency.labels(endpoint=endpoint)
        hist.observe(seconds)

    def count_predictions(
        self, version: str, labels: list[Any] | None, rows: int, unseen: list | None = None
    ) -> None:
        """Count rows per predicted label (regression has no label: the label is left out),
        and the `unseen` categories scored as missing in them (`count_unseen`)."""
        if unseen:
            self.count_unseen(unseen)
        if labels is None:
            self._prediction_child(version, "").inc(rows)
            return
        if len(labels) == 1:
            self._prediction_child(version, str(labels[0])).inc()
            return
        for label, n in Tally(map(str, labels)).items():
            self._prediction_child(version, label).inc(n)

    def count_unseen(
        self, unseen: Iterable[dict[str, Any]] | None = (), error: Exception | None = None
    ) -> None:
        """Count unseen categories by feature: those scored as missing (`{"field", ...}` items
        from the validator) or the one that failed a request (`UnseenCategoryError`)."""
        fields = [item["field"] for item in unseen or ()]
        if isinstance(error, UnseenCategoryError):
            fields.append(error.field)
        for feature, n in Tally(fields).items():  # rare: no pre-bound children
            self.unseen.labels(feature=feature).inc(n)

    def _prediction_child(self, version: str, label: str) -> Any:
        child = self._prediction_children.get((version, label))
        if child is None:
            child = self.predictions.labels(model_version=version, label=label)
            self._prediction_children[(version, label)] = child
        return child

    def set_model(self, name: str, version: str, alias: str, loaded_at: float) -> None:
        """Point `mlops_model_info` at the new version (the old label set is dropped)."""
        for labels in list(self._model_labels()):
            if labels != (name, version, alias):
                self.model_info.labels(*labels).set(0)
                if self.multiproc_dir is None:
                    self.model_info.remove(*labels)
        self.model_info.labels(name, version, alias).set(1)
        self.model_loaded.labels(model_name=name).set(loaded_at)

    def _model_labels(self) -> list[tuple[str, ...]]:
        return [tuple(s.labels.values()) for m in self.model_info.collect() for s in m.samples]

    def exposition(self) -> bytes:
        if self.multiproc_dir is not None:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=str(self.multiproc_dir))
            return generate_latest(registry)
        return generate_latest(self.registry)


# A stream batch is read, predicted, published and checkpointed: tens of ms to seconds.
BATCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class StreamMetrics(ServingMetrics):
    """The stream consumer's metrics: the model holder's (reloads, model info, predictions)
    plus records in, out and dead-lettered, batch latency and per-shard lag."""

    def __init__(self) -> None:
        super().__init__(None)
        reg = self.registry
        self.records_in = Counter(
            names.STREAM_RECORDS_IN_TOTAL,
            "Kinesis records read from the input stream, by shard.",
            ["shard_id"],
            registry=reg,
        )
        self.base64_records = Counter(
            names.STREAM_BASE64_RECORDS_TOTAL,
            "Input records whose data was base64 text of JSON (AWS CLI v1), decoded and read.",
            ["shard_id"],
            registry=reg,
        )
        self.records_out = Counter(
            names.STREAM_RECORDS_OUT_TOTAL,
            "Output records (one per input row) accepted by the results stream.",
            ["model_version"],
            registry=reg,
        )
        self.dead_letters = Counter(
            names.STREAM_DEAD_LETTERS_TOTAL,
            "Input records sent to the dead-letter stream, by reason (json, validation, size).",
            ["reason"],
            registry=reg,
        )
        self.batch_seconds = Histogram(
            names.STREAM_BATCH_SECONDS,
            "One batch: records read, predicted, published and checkpointed.",
            buckets=BATCH_BUCKETS,
            registry=reg,
        )
        self.lag = Gauge(
            names.STREAM_LAG_SECONDS,
            "How far the consumer is behind the newest record of a shard (MillisBehindLatest).",
            ["shard_id"],
            registry=reg,
        )
        for reason in ("json", "validation", "size"):
            self.dead_letters.labels(reason=reason)
