"""The Lifecycle exporter: registry and report figures as Prometheus metrics (`mlops exporter`).

A custom collector reads on scrape, but never makes a scrape wait on a slow store: each source
(`registry` = MLflow, `reports` = MongoDB) is read in its own daemon thread, at most once per
`cache_seconds`, and a scrape waits at most `budget_seconds` for a read in flight. A source that
fails or is too slow is reported by `mlops_exporter_source_up{source}` = 0 and its figures are
left out (so `absent()` rules fire); the other source's figures are still exported, and the
endpoint answers 200 whatever the stores do.

Modules, in the order a scrape goes through them: `server` (the HTTP endpoint), `collector`
(families, thresholds from the settings), `cache` (the background read with its budget),
`readers` (MLflow through `lifecycle.stores.registry`, the `reports` collection), `families` (names,
help texts and label names of everything emitted).
"""

from monitoring.exporter.collector import LifecycleCollector
from monitoring.exporter.server import ExporterServer, serve_exporter

__all__ = ["ExporterServer", "LifecycleCollector", "serve_exporter"]
