"""The stream consumer: Kinesis `MLOPS_STREAM_IN` → predictions → `MLOPS_STREAM_OUT`.

One loop takes the shards in turn. For a shard it reads up to `MLOPS_STREAM_BATCH` records
(GetRecords), validates them with the API's validator and predicts them in one call with the
model the API's holder serves, journals the log entries (the API's journal and shipper), publishes
the outputs and dead letters (PutRecords), and only then writes the shard's checkpoint. So a
crash anywhere replays at most the batch in flight: outputs are at-least-once, and the log, whose
ids are derived from the records, exactly-once. A batch that cannot be published is read again
from the checkpoint after a pause; content never stops the consumer, only a stop request does.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from pymongo.errors import PyMongoError

from lifecycle.core.settings import Settings
from serving.holder import ModelHolder
from serving.logger import PredictionLogger
from serving.metrics import StreamMetrics
from serving.stream import records as batches
from serving.stream.checkpoints import Checkpoints
from serving.stream.kinesis import StreamMissingError, describe_failure, list_shards, put_all
from serving.stream.shards import Shard, ShardSet

log = logging.getLogger(__name__)

# After a failed read or publish, the shard waits this long before it is read again.
BACKOFF_SECONDS = 2.0


class StreamConsumer:
    """Consumes every shard of the input stream until `stop` is set."""

    def __init__(
        self,
        settings: Settings,
        holder: ModelHolder,
        logger: PredictionLogger | None,
        metrics: StreamMetrics,
        client: Any,
        checkpoints: Checkpoints,
    ) -> None:
        self.settings = settings
        self.holder = holder
        self.logger = logger
        self.metrics = metrics
        self.client = client
        self.checkpoints = checkpoints
        self.shards = ShardSet()
        self.refreshed_at: float | None = None
        self.batches = 0

    # -- the loop -------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Read, predict, publish and checkpoint until `stop`; a batch under way is finished."""
        while not stop.is_set():
            now = time.monotonic()
            if self.refreshed_at is None or now - self.refreshed_at >= (
                self.settings.stream_refresh_seconds
            ):
                self.refresh()
            if not self.shards.shards:  # no shard list yet (Kinesis or MongoDB unreachable)
                stop.wait(BACKOFF_SECONDS)
                continue
            if self.holder.current is None:  # no model yet: records wait in the stream
                stop.wait(0.1)
                continue
            due = [s for s in self.shards.readable() if s.next_read <= now]
            for shard in due:
                if stop.is_set():
                    break
                self.step(shard)
            if not due:
                waits = [s.next_read - now for s in self.shards.readable()]
                stop.wait(min([*waits, 1.0]) if waits else 1.0)

    def refresh(self) -> None:
        """Merge the current shard list with the stored checkpoints (resharding is followed).

        Until the first success nothing is read: without the checkpoints a restart would begin
        again at MLOPS_STREAM_START. Later failures keep the shards already known."""
        first = not self.shards.shards
        try:
            listed = list_shards(self.client, self.settings.stream_in)
            saved = self.checkpoints.load() if first or self._unknown(listed) else {}
        except Exception as exc:  # Kinesis or MongoDB unreachable: try again
            log.warning("shard list not refreshed: %s", describe_failure(exc))
            self.refreshed_at = None if first else time.monotonic()
            return
        self.refreshed_at = time.monotonic()
        for shard_id in self.shards.update(listed, saved):
            shard = self.shards.shards[shard_id]
            # Shards that appear later (children of a reshard) start at their beginning.
            if first:
                shard.start = self.settings.stream_start
            log.info("consuming %s from %s", shard_id, shard.checkpoint or shard.start)

    def _unknown(self, listed: list[dict[str, Any]]) -> bool:
        return any(item["ShardId"] not in self.shards.shards for item in listed)

    # -- one shard, one batch -------------------------------------------------------------------
    def step(self, shard: Shard) -> None:
        """One batch of one shard; failures back the shard off and re-read from its checkpoint."""
        try:
            response = self.read(shard)
            if response is not None:
                self.consume(shard, response)
        except StreamMissingError:
            raise
        except Exception as exc:  # Kinesis or MongoDB trouble, not content: try again later
            why = describe_failure(exc)
            log.warning("%s: %s; retrying from the checkpoint", shard.shard_id, why)
            shard.iterator = None
            shard.next_read = time.monotonic() + BACKOFF_SECONDS

    def read(self, shard: Shard) -> dict[str, Any] | None:
        """GetRecords from the shard's position (None when its iterator had expired)."""
        client = self.client
        if shard.iterator is None:
            shard.iterator = self._iterator(shard)
        try:
            limit = self.settings.stream_batch
            return client.get_records(ShardIterator=shard.iterator, Limit=limit)
        except client.exceptions.ExpiredIteratorException:
            shard.iterator = None  # older than 5 minutes: a fresh one at the checkpoint
            return None
        except client.exceptions.ResourceNotFoundException as exc:
            raise StreamMissingError(
                f"stream {self.settings.stream_in!r}: {describe_failure(exc)}"
            ) from exc

    def _iterator(self, shard: Shard) -> str:
        args: dict[str, Any] = {"StreamName": self.settings.stream_in, "ShardId": shard.shard_id}
        if shard.checkpoint is not None:
            args.update(
                ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=shard.checkpoint
            )
        else:
            args["ShardIteratorType"] = shard.start
        return self.client.get_shard_iterator(**args)["ShardIterator"]

    def consume(self, shard: Shard, response: dict[str, Any]) -> None:
        """Predict, journal, publish and checkpoint one GetRecords answer."""
        started = time.perf_counter()
        records = response["Records"]
        metrics = self.metrics
        metrics.lag.labels(shard_id=shard.shard_id).set(response.get("MillisBehindLatest", 0) / 1e3)
        if records:
            metrics.records_in.labels(shard_id=shard.shard_id).inc(len(records))
            self.publish(shard, records, started)
            shard.checkpoint = records[-1]["SequenceNumber"]
        next_iterator = response.get("NextShardIterator")
        ended = shard.reached_end(next_iterator)
        if records or ended or shard.unsaved:
            self.save(shard, ended)
        if records:
            metrics.batch_seconds.observe(time.perf_counter() - started)
            self.batches += 1
        shard.iterator = next_iterator
        full = len(records) >= self.settings.stream_batch
        shard.next_read = time.monotonic() + (0.0 if full else self.settings.stream_idle_seconds)
        if ended:
            shard.ended = True
            self.refreshed_at = None  # its children may be new: list the shards again
            log.info("%s read to its end (resharded)", shard.shard_id)

    def save(self, shard: Shard, ended: bool) -> None:
        """Write the checkpoint. MongoDB down does not stop the stream: the position is kept in
        memory and written with the next batch (a crash meanwhile replays more outputs; the log
        still holds each row once)."""
        try:
            self.checkpoints.save(shard.shard_id, shard.checkpoint, ended)
            shard.unsaved = False
        except PyMongoError as exc:
            if not shard.unsaved:
                log.warning("%s: checkpoint not written (%s); kept in memory", shard.shard_id, exc)
            shard.unsaved = True

    def publish(self, shard: Shard, records: list[dict[str, Any]], started: float) -> None:
        """Validate and predict the batch, journal it, then put outputs and dead letters."""
        settings, metrics = self.settings, self.metrics
        model = self.holder.require()  # one model for the whole batch, even mid-swap
        missing = settings.unseen_category == "missing"
        decoded = batches.decode(
            records, model, settings.max_batch, settings.stream_max_record_bytes, missing
        )
        if decoded.unseen:
            metrics.count_unseen(decoded.unseen)
        if decoded.base64:
            metrics.base64_records.labels(shard_id=shard.shard_id).inc(decoded.base64)
        published = batches.build(decoded, model, settings.stream_in, shard.shard_id, started)
        if published.entries:
            labels = [p for entry in published.entries for p in entry.predictions]
            counted = labels if model.is_classifier else None
            metrics.count_predictions(model.version, counted, len(labels))
            if self.logger is not None:
                self.logger.log_now(published.entries)  # on disk before the checkpoint
        letters = [batches.dead_letter(d, settings.stream_in, shard.shard_id) for d in decoded.dead]
        attempts = settings.stream_max_attempts
        put_all(self.client, settings.stream_out, published.outputs, attempts)
        put_all(self.client, settings.stream_dlq, letters, attempts)
        metrics.records_out.labels(model_version=model.version).inc(len(published.outputs))
        for letter in decoded.dead:
            metrics.dead_letters.labels(reason=letter.reason).inc()
            log.info(
                "dead letter %s:%s: %s",
                shard.shard_id,
                letter.record["SequenceNumber"],
                letter.error,
            )
