"""The exporter's /metrics endpoint: prometheus-client's threaded HTTP server on one collector."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from lifecycle.core.settings import Settings
from monitoring.exporter.collector import LifecycleCollector


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
