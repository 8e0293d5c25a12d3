"""The prediction log: documents go to MongoDB off the request path and are never lost.

Three stages, each cheap for the one before it:

1. A request appends one `lifecycle.stores.journal.JournalEntry` (its ids, time, model, records,
   predictions, probabilities, latency, request id, endpoint) to an in-memory deque: no
   document per row, no encoding, no lock, no wake-up; it never blocks.
2. A writer thread drains the deque every `flush_seconds`, encodes each request as one journal
   line (`lifecycle.stores.journal.encode_entry`) and appends them to the journal: a JSON-lines
   segment under MLOPS_HOME/spool. It seals the segment (renames it complete) whenever the
   shipper has caught up, or when the segment grows past `seal_bytes`, and wakes the shipper.
3. The shipper, a process of its own (`serving.shipper`), inserts sealed segments into MongoDB
   with `insert_many` and deletes each once MongoDB holds all of it. While MongoDB is
   unreachable the segments wait on disk and are retried; replays are idempotent because each
   document's `_id` is its prediction id.

The API process thus pays one entry per request, and one orjson call per request plus one file
write per flush in a tight loop off the request path (measured: the same encoding costs several
times more per call when interleaved with request handling than in a batch); building
documents, BSON encoding and the database round trips happen in another process, outside the
API's GIL (bench/bench_serving.py measures what is left). The shipper reports back which ids it
shipped, so `pending()` (used by /feedback) and the queue and spool metrics stay exact.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from lifecycle.stores import journal
from lifecycle.stores.journal import JournalEntry
from serving.shipper_process import ShipperProcess

log = logging.getLogger(__name__)


class PredictionLogger:
    """Bounded queue → journal segments on disk → shipper process → MongoDB."""

    def __init__(
        self,
        spool_dir: Path,
        mongo_uri: str,
        mongo_db: str,
        *,
        max_queue: int = 10_000,
        flush_seconds: float = 0.1,
        seal_bytes: int = 8 << 20,
        retry_seconds: float = 1.0,
        shutdown_seconds: float = 30.0,
        on_change: Callable[[int, int], None] | None = None,
    ) -> None:
        self.spool_dir = spool_dir
        self.mongo_uri = mongo_uri
        self.mongo_db = mongo_db
        self.max_queue = max_queue
        self.flush_seconds = flush_seconds
        self.seal_bytes = seal_bytes
        self.retry_seconds = retry_seconds
        self.shutdown_seconds = shutdown_seconds
        self.on_change = on_change or (lambda queued, spooled: None)
        # The request side only appends to a deque (atomic in CPython): no lock and no wake-up
        # per request. Signalling the writer on every request cost ~75 us of CPU per request
        # (futex + GIL hand-offs); the writer drains on its own clock instead. Beyond
        # `max_queue` requests (the disk slower than the API) requests write their line to the
        # journal themselves, so memory stays bounded.
        self._buffer: deque[JournalEntry] = deque()
        self._unwritten: set[str] = set()  # ids journaled, not yet confirmed in MongoDB
        self._lock = threading.Lock()  # guards the open segment, segment table and id set
        self._pid = os.getpid()
        self._seq = time.time_ns()  # unique across restarts, even when the pid is reused
        self._open: IO[bytes] | None = None
        self._open_path: Path | None = None
        self._open_count = 0
        self._open_bytes = 0
        # Sealed segments not yet confirmed by the shipper: name -> documents in it.
        self._sealed: dict[str, int] = {}
        self._mongo_up = True
        self._shipper = ShipperProcess(
            spool_dir, self._pid, mongo_uri, mongo_db, retry_seconds, self._apply_all
        )
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- request side ---------------------------------------------------------------------------
    def log(self, entry: JournalEntry) -> None:
        """Accept one request's entry. Never blocks on MongoDB; the caller must not change the
        entry's objects afterwards.
        """
        if len(self._buffer) >= self.max_queue:  # overload: to disk, neither dropped nor hoarded
            with self._lock:
                self._track([entry])
            self._journal([entry])
        else:
            self._buffer.append(entry)

    def log_now(self, entries: list[JournalEntry]) -> None:
        """Journal entries in the caller's thread: once this returns they survive the process
        dying (the stream consumer checkpoints a batch only after its entries are on disk).
        The writer thread seals and ships them on its own clock, as it does every entry."""
        with self._lock:
            self._track(entries)
        self._journal(entries)

    def pending(self, ids: set[str]) -> set[str]:
        """Which of `ids` were accepted but are not in MongoDB yet (queued or in the journal)."""
        with self._lock:  # the writer moves entries from the queue to the journal under it
            found = ids & self._unwritten
            rest = ids - found
            for entry in list(self._buffer) if rest else ():
                found.update(rest.intersection(entry.ids))
        return found

    @property
    def queued(self) -> int:
        """Documents on their way to MongoDB: in memory, or in the journal while it is up."""
        in_memory = sum([len(entry.ids) for entry in list(self._buffer)])  # rows, not requests
        return in_memory + (self._backlog() if self._mongo_up else 0)

    @property
    def spooled(self) -> int:
        """Documents waiting in the journal because MongoDB is unreachable."""
        return 0 if self._mongo_up else self._backlog()

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self._seal_leftovers()
        self._shipper.start()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Flush: journal everything queued, seal it, and let the shipper deliver it.

        The shipper gets `shutdown_seconds` to reach MongoDB; what it cannot deliver stays in
        the journal and is shipped by the next start (ours or another worker's).
        """
        if self._thread is not None:
            self._stopping.set()
            self._thread.join(self.shutdown_seconds)
            self._thread = None
        else:  # never started: still journal what was accepted
            self._flush(final=True)
        self._shipper.stop(self.shutdown_seconds + 5)
        self._notify()

    # -- writer thread --------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            stop = self._stopping.wait(self.flush_seconds)
            try:
                self._flush(final=stop)
                if not stop and self._shipper.restart_if_dead():
                    with self._lock:
                        if self._sealed:
                            self._shipper.wake()
            except Exception:  # the writer must outlive any one bad batch; it is logged
                log.exception("prediction log writer error")
            if stop:
                break

    def _flush(self, final: bool = False) -> None:
        self._shipper.read()
        # Only what was there at the start of the cycle, in one write.
        count = len(self._buffer)
        if count:
            with self._lock:  # so pending() finds every entry in the queue or the id set
                popleft = self._buffer.popleft
                entries = [popleft() for _ in range(count)]
                self._track(entries)
            self._journal(entries)
        with self._lock:
            # Seal whenever the shipper has caught up (so documents reach MongoDB within about
            # one flush interval), and otherwise only when the segment is large: while MongoDB
            # is down the journal grows as a few big files, not thousands of small ones.
            if self._open_count and (
                final or not self._sealed or self._open_bytes >= self.seal_bytes
            ):
                self._seal()
        self._notify()

    def _journal(self, entries: list[JournalEntry]) -> None:
        encode = journal.encode_entry
        data = b"".join([encode(entry) for entry in entries])
        rows = sum([len(entry.ids) for entry in entries])
        with self._lock:
            if self._open is None:
                self._seq += 1
                self.spool_dir.mkdir(parents=True, exist_ok=True)
                name = journal.segment_name(self._pid, self._seq, journal.OPEN)
                self._open_path = self.spool_dir / name
                self._open = open(self._open_path, "ab")  # noqa: SIM115 (kept open)
            self._open.write(data)
            self._open.flush()  # in the page cache: survives the API process crashing
            self._open_count += rows
            self._open_bytes += len(data)

    def _track(self, entries: list[JournalEntry]) -> None:
        """Remember the entries' ids until the shipper confirms them (call with the lock held)."""
        for entry in entries:
            self._unwritten.update(entry.ids)

    def _seal(self) -> None:
        """Close the open segment and hand it to the shipper (call with the lock held)."""
        assert self._open is not None and self._open_path is not None
        self._open.close()
        sealed = self._open_path.with_suffix(journal.SEALED)
        self._open_path.rename(sealed)
        self._sealed[sealed.name] = self._open_count
        self._open, self._open_path = None, None
        self._open_count, self._open_bytes = 0, 0
        self._shipper.wake()

    def _backlog(self) -> int:
        return self._open_count + sum(self._sealed.values())

    def _seal_leftovers(self) -> None:
        """Segments under our own pid are from an earlier process that had it (a container's
        pid 1 is reused on every restart): seal them and count them as ours to ship."""
        for path in self.spool_dir.glob(f"{journal.PREFIX}{self._pid}-*"):
            if path.name.endswith(journal.OPEN):
                sealed = path.with_suffix(journal.SEALED)
                path.rename(sealed)
                path = sealed
            if path.name.endswith(journal.SEALED):
                self._sealed[path.name] = journal.count_documents(path)

    # -- the shipper's reports ------------------------------------------------------------------
    def _apply_all(self, messages: list[dict[str, Any]]) -> None:
        with self._lock:
            for message in messages:
                self._apply(message)

    def _apply(self, message: dict[str, Any]) -> None:
        if "shipped" in message:
            self._sealed.pop(message["shipped"], None)
            self._unwritten.difference_update(message["ids"])
        elif "adopted" in message:
            self._sealed[message["adopted"]] = message["count"]
        elif "mongo" in message:
            self._mongo_up = message["mongo"] == "up"

    def _notify(self) -> None:
        self.on_change(self.queued, self.spooled)
