"""The prediction logger's shipper child (`serving.shipper`): started, woken, supervised, its
messages read, and stopped. The logger (`serving.logger`) owns what the messages mean."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from lifecycle.core.waiting import WaitTimeout, wait_until

log = logging.getLogger(__name__)


class ShipperProcess:
    """One shipper process at a time for one API process's journal.

    `on_messages` gets each batch of the shipper's reports (`{"shipped": ...}`, `{"adopted":
    ...}`, `{"mongo": "up"|"down"}`), in order.
    """

    def __init__(
        self,
        spool_dir: Path,
        owner: int,
        mongo_uri: str,
        mongo_db: str,
        retry_seconds: float,
        on_messages: Callable[[list[dict[str, Any]]], None],
    ) -> None:
        self.spool_dir = spool_dir
        self.owner = owner
        self.mongo_uri = mongo_uri
        self.mongo_db = mongo_db
        self.retry_seconds = retry_seconds
        self.on_messages = on_messages
        self.proc: subprocess.Popen | None = None
        self._started = 0.0
        self._partial = b""

    def start(self) -> None:
        # The child reads the same settings object; only the MongoDB target is handed over
        # explicitly, since the app may run with settings that are not the environment's.
        env = {**os.environ, "MONGO_URI": self.mongo_uri, "MLOPS_MONGO_DB": self.mongo_db}
        command = [
            sys.executable,
            "-m",
            "serving.shipper",
            "--dir",
            str(self.spool_dir),
            "--owner",
            str(self.owner),
            "--retry-seconds",
            str(self.retry_seconds),
        ]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        self._started = time.monotonic()

    def restart_if_dead(self) -> bool:
        """A shipper that died is restarted (at most every 5 s); the journal kept its work."""
        proc = self.proc
        if proc is None or proc.poll() is None:
            return False
        if time.monotonic() - self._started < 5:
            return False
        log.warning("prediction shipper exited with %s; restarting it", proc.returncode)
        self.read()
        self.start()
        return True

    def wake(self) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None:
            return
        try:
            proc.stdin.write(b"\n")
            proc.stdin.flush()
        except (BrokenPipeError, ValueError):  # it died; restart_if_dead restarts it
            pass

    def read(self) -> None:
        """Hand whatever the shipper has reported since the last read to `on_messages`."""
        stream = self.proc.stdout if self.proc is not None else None
        if stream is None or stream.closed:
            return
        data = b""
        while True:
            try:
                block = os.read(stream.fileno(), 1 << 16)
            except BlockingIOError:
                break
            if not block:
                break
            data += block
        if not data:
            return
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()  # a partial last line waits for the rest
        self.on_messages([orjson.loads(line) for line in lines])

    def stop(self, timeout: float) -> None:
        """End of input: the shipper makes its final round and exits; killed after `timeout`."""
        proc = self.proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()

        def exit_code() -> int | None:
            self.read()  # keeps its pipe from filling up while it finishes
            return proc.poll()

        try:
            wait_until(
                exit_code,
                "the prediction shipper to finish its final round",
                timeout,
                interval=0.02,
                done=lambda code: code is not None,
            )
        except WaitTimeout:
            log.warning("prediction shipper still busy at shutdown; the journal keeps the rest")
            proc.kill()
            proc.wait()
        self.read()
        if proc.stdout is not None:
            proc.stdout.close()
        self.proc = None
