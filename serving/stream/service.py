"""`mlops stream` put together: the API's holder (with its watcher), journal and shipper, the
checkpoint store, the Kinesis client and the consumer loop, plus /metrics and signal handling.

SIGTERM (and Ctrl-C) sets the stop flag: the batch under way is finished and checkpointed, the
journal is flushed and handed to the shipper, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from typing import Any

from lifecycle.core.settings import Settings
from lifecycle.core.waiting import WaitTimeout, wait_until
from lifecycle.stores.prediction_store import PredictionStore
from serving.holder import ModelHolder
from serving.logger import PredictionLogger
from serving.metrics import StreamMetrics
from serving.stream.checkpoints import Checkpoints
from serving.stream.consumer import StreamConsumer
from serving.stream.kinesis import StreamError, describe_failure, ensure_streams, kinesis_client

log = logging.getLogger(__name__)


class Watcher:
    """The holder's own watcher (`ModelHolder.run`: first load with backoff, then alias
    polling) on an event loop in a thread of its own, as the API runs it in its lifespan."""

    def __init__(self, holder: ModelHolder) -> None:
        self.holder = holder
        self.loop = asyncio.new_event_loop()
        self.task: asyncio.Task | None = None
        self.thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(self.holder.run())
        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(self.task)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.task is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(10)


def check_streams(client: Any, settings: Settings, wait_seconds: float, create: bool) -> None:
    """The three streams exist (created first with `create`), waiting up to `wait_seconds` for
    a Kinesis endpoint that is still starting; StreamError naming the stream otherwise."""
    names = [settings.stream_in, settings.stream_out, settings.stream_dlq]

    def probe() -> list[str]:
        if create:
            ensure_streams(client, names)
        missing = []
        for name in names:
            try:
                client.describe_stream_summary(StreamName=name)
            except client.exceptions.ResourceNotFoundException:
                missing.append(name)
        return missing

    try:
        missing = wait_until(
            probe,
            "the Kinesis streams",
            wait_seconds,
            0.5,
            done=lambda m: not m,
            ignore=(Exception,),
        )
    except WaitTimeout as exc:
        observed = exc.observed
        if isinstance(observed, Exception):
            raise StreamError(f"Kinesis: {describe_failure(observed)}") from None
        missing = observed
    if missing:
        raise StreamError(
            f"stream {missing[0]!r} does not exist (MLOPS_STREAM_IN/OUT/DLQ): create it, "
            "or run `mlops kinesis` for a local one"
        )


def serve(
    settings: Settings,
    stop: threading.Event | None = None,
    wait_seconds: float = 0.0,
    create: bool = False,
    metrics_host: str = "127.0.0.1",
) -> StreamConsumer:
    """Run the consumer until SIGTERM/SIGINT (or `stop`); returns it when it has stopped."""
    stop = stop or threading.Event()
    client = kinesis_client(settings)
    check_streams(client, settings, wait_seconds, create)
    metrics = StreamMetrics()
    holder = ModelHolder(settings, metrics)
    store = PredictionStore.open(settings, "stream")
    logger = _start_logger(settings, metrics)
    server = _start_metrics(settings, metrics, metrics_host)
    watcher = Watcher(holder)
    consumer = StreamConsumer(
        settings, holder, logger, metrics, client, Checkpoints(store, settings.stream_in)
    )
    previous = _on_signals(lambda *_: stop.set())
    try:
        watcher.start()
        log.info("consuming %s -> %s", settings.stream_in, settings.stream_out)
        consumer.run(stop)
    finally:
        _restore_signals(previous)
        watcher.stop()
        if logger is not None:
            logger.close()  # the journal reaches the shipper (or waits on disk for the next run)
        if server is not None:
            server.shutdown()
        store.close()
    return consumer


def _start_logger(settings: Settings, metrics: StreamMetrics) -> PredictionLogger | None:
    if not settings.log_predictions:
        return None
    logger = PredictionLogger(
        settings.spool_dir,
        settings.mongo_uri,
        settings.mongo_db,
        on_change=lambda queued, spooled: (
            metrics.log_queue.set(queued),
            metrics.log_spooled.set(spooled),
        ),
    )
    logger.start()
    return logger


def _start_metrics(settings: Settings, metrics: StreamMetrics, host: str) -> Any:
    """prometheus-client's own HTTP server on MLOPS_STREAM_METRICS_PORT (0: none)."""
    if not settings.stream_metrics_port:
        return None
    from prometheus_client import start_http_server

    server, _thread = start_http_server(
        settings.stream_metrics_port, addr=host, registry=metrics.registry
    )
    return server


_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _on_signals(handler: Any) -> dict[int, Any]:
    """Install `handler` for SIGTERM and SIGINT (main thread only); returns the previous ones."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {number: signal.getsignal(number) for number in _SIGNALS}
    for number in _SIGNALS:
        signal.signal(number, handler)
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    for number, handler in previous.items():
        signal.signal(number, handler)
