"""The prediction-log shipper: a process of its own that moves journal segments into MongoDB.

Each API worker's `PredictionLogger` starts one (`python -m serving.shipper --dir D --owner PID`)
and talks to it through two pipes:

- its stdin: one line per sealed segment, a wake-up. End of file means the API is closing (or
  died): everything left is shipped once more and the shipper exits.
- its stdout: one JSON object per line for the API's metrics and `/feedback`:
  `{"shipped": NAME, "count": N, "ids": [...]}`, `{"adopted": NAME, "count": N}` and
  `{"mongo": "up"|"down"}`.

Why a process and not a thread of the API: pymongo's BSON encoding and socket handling hold the
GIL, and in the API's writer thread they took it from the request loop: throughput with the log
on was 88 % of off, against 95.5 % when the writer only appended to a file (bench_serving.py).
Here they run beside the API instead, and the API only writes JSON lines.

While MongoDB is unreachable the segments stay on disk (they are the spool) and are retried every
`--retry-seconds`; nothing is lost if the API, the shipper or MongoDB stops, because a segment is
deleted only after MongoDB has every document in it.
"""

from __future__ import annotations

import logging
import os
import select
import sys
import time
from pathlib import Path
from typing import IO, Annotated

import orjson
import typer
from pymongo.errors import PyMongoError

from lifecycle.core.errors import SharedServerError
from lifecycle.stores import journal
from lifecycle.stores.prediction_store import PredictionStore

log = logging.getLogger("serving.shipper")

# Shipping may lag; answering requests may not. On a host the API shares with its load (or, here,
# with a local MongoDB-wire server) the shipper yields the CPU first: the journal on disk absorbs
# the difference and the shipper catches up as soon as a core is free.
NICENESS = 10


class Shipper:
    """Ships the sealed segments of one API process (and orphans of dead ones) to MongoDB."""

    def __init__(
        self,
        store: PredictionStore,
        spool_dir: Path,
        owner: int,
        out: int,
        retry_seconds: float = 1.0,
    ) -> None:
        self.store = store
        self.spool_dir = spool_dir
        self.owner = owner
        self.out = out
        self.retry_seconds = retry_seconds
        self.mongo_up: bool | None = None
        self.claimed = False  # the server is ours (`PredictionStore.claim_server`), checked once

    # -- one round ------------------------------------------------------------------------------
    def ship_all(self, adopt: bool = True, final: bool = False) -> bool:
        """Adopt orphans (`adopt`), then ship every sealed segment we own. True when none is left.

        `final`: the owner has closed (or died), so its own open segment is complete too.
        """
        if adopt or final:
            self.adopt_orphans(include_own_open=final)
        for path in sorted(self.spool_dir.glob(f"{journal.PREFIX}{self.owner}-*{journal.SEALED}")):
            if not self.ship(path):
                return False
        return True

    def ship(self, path: Path) -> bool:
        ids: list[str] = []
        try:
            if not self.claimed:
                self.store.claim_server()
                self.claimed = True
            for chunk in journal.read_segment(path):
                self.store.insert_predictions(chunk)
                ids.extend([d["_id"] for d in chunk])
        except FileNotFoundError:  # claimed or shipped meanwhile by another shipper
            return True
        except PyMongoError as exc:
            if self.mongo_up is not False:
                log.warning("MongoDB unreachable (%s); predictions stay in %s", exc, path.parent)
            self._set_mongo(False)
            return False
        except SharedServerError as exc:  # another database owns this server: keep ours on disk
            if self.mongo_up is not False:
                log.error("%s; predictions stay in %s", exc, path.parent)
            self._set_mongo(False)
            return False
        self._set_mongo(True)
        path.unlink(missing_ok=True)
        self._say({"shipped": path.name, "count": len(ids), "ids": ids})
        return True

    def adopt_orphans(self, include_own_open: bool = False) -> None:
        """Segments whose writer is gone become ours (renamed, so only one shipper takes them)."""
        for path in self.spool_dir.glob(f"{journal.PREFIX}*"):
            owner = journal.owner_pid(path)
            if owner is None:
                continue
            if owner == self.owner:
                if not (include_own_open and path.name.endswith(journal.OPEN)):
                    continue
            elif journal.alive(owner):
                continue
            claimed = path.with_name(
                journal.segment_name(self.owner, f"adopted-{time.time_ns()}", journal.SEALED)
            )
            try:
                path.rename(claimed)
            except OSError:  # another shipper claimed it first
                continue
            self._say({"adopted": claimed.name, "count": journal.count_documents(claimed)})

    # -- main loop ------------------------------------------------------------------------------
    def run(self, wake: IO[bytes]) -> None:
        """Ship on every wake-up and every `retry_seconds`, until the owner closes our stdin."""
        fd = wake.fileno()
        self.ship_all()  # what earlier runs left behind
        last_adopted = time.monotonic()
        while True:
            readable, _, _ = select.select([fd], [], [], self.retry_seconds)
            if readable and not os.read(fd, 1 << 16):
                break  # end of file: the owner is closing or gone
            # A wake-up means our owner sealed a segment (up to 10 a second); orphans appear
            # only when a process dies, so the folder is scanned for them on the retry clock.
            now = time.monotonic()
            adopt = now - last_adopted >= self.retry_seconds
            if adopt:
                last_adopted = now
            self.ship_all(adopt=adopt)
        # One final round, not a retry loop: a dead MongoDB must not hold up the API's shutdown,
        # and whatever is left stays on disk for the next start to ship.
        self.ship_all(final=True)

    def _set_mongo(self, up: bool) -> None:
        if self.mongo_up is not up:
            self.mongo_up = up
            self._say({"mongo": "up" if up else "down"})

    def _say(self, message: dict) -> None:
        # Unbuffered writes to the file descriptor: once the owner is gone nothing is left in a
        # buffer for the interpreter to fail flushing at exit.
        if self.out < 0:
            return
        try:
            os.write(self.out, orjson.dumps(message, option=orjson.OPT_APPEND_NEWLINE))
        except OSError:  # the owner is gone; keep shipping regardless
            self.out = -1


def main(
    spool_dir: Annotated[
        Path, typer.Option("--dir", help="the journal (spool) folder of the API process")
    ],
    owner: Annotated[int, typer.Option(help="pid of the API process whose segments to ship")],
    retry_seconds: Annotated[
        float, typer.Option(min=0.01, help="seconds between tries while MongoDB is unreachable")
    ] = 1.0,
) -> None:
    """Ship prediction journal segments to MongoDB (started by the API's prediction logger)."""
    from lifecycle.core.settings import get_settings

    logging.basicConfig(level=logging.INFO, format="%(levelname)s shipper: %(message)s")
    os.nice(NICENESS)
    settings = get_settings()  # MONGO_URI and MLOPS_MONGO_DB, set by the API for this process
    store = PredictionStore.open(settings, "shipper")
    try:
        shipper = Shipper(store, spool_dir, owner, sys.stdout.fileno(), retry_seconds)
        shipper.run(sys.stdin.buffer)
    finally:
        store.close()


if __name__ == "__main__":
    typer.run(main)
