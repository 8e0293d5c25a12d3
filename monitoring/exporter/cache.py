"""A source read in the background: at most once per `ttl`, and a scrape waits at most `budget`
for the read in flight, so a slow or hanging store never holds up a scrape."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from monitoring.exporter.families import Reading

log = logging.getLogger(__name__)

# A hanging read hides the last good figures once they are this many ttls old.
RECENT_TTLS = 4


class CachedSource:
    """One source read in its own daemon thread at most every `ttl` seconds."""

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

    @property
    def last_good(self) -> Reading | None:
        """The last successful reading, however old."""
        with self._lock:
            return self._last_good

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

    def _fresh(self) -> bool:
        return self._last is not None and time.time() - self._last.finished_at < self.ttl

    def get(self) -> tuple[bool, Reading | None]:
        """(up, reading whose samples to export) after waiting at most `budget` seconds."""
        with self._done:
            if self._started is None and not self._fresh():
                self._started = time.monotonic()
                threading.Thread(target=self._run, name=self.thread_name, daemon=True).start()
            if self._started is not None:
                self._done.wait_for(lambda: self._started is None, timeout=self.budget)
            if self._started is not None and time.monotonic() - self._started >= self.budget:
                # A read is hanging: say so, but keep showing figures that are still recent.
                good = self._last_good
                recent = (
                    good is not None and time.time() - good.finished_at < RECENT_TTLS * self.ttl
                )
                return False, good if recent else None
            last = self._last
            if last is None or not last.ok:
                return False, last
            return True, last
