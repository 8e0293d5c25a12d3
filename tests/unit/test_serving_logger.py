"""The prediction logger's journal: with MongoDB unreachable nothing is dropped, segments read
back exactly (a torn last line from a crash is skipped), and overload goes to disk, not memory.
The shipper process runs for real here; MongoDB is simply not there (port 9)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from lifecycle.stores import journal
from lifecycle.stores.journal import JournalEntry
from serving.logger import PredictionLogger

UNREACHABLE = "mongodb://127.0.0.1:9"


def _request(rows: int, **changes: Any) -> JournalEntry:
    """One request's log entry, as the prediction routes hand it to the logger."""
    entry = JournalEntry(
        ids=[str(uuid.uuid4()) for _ in range(rows)],
        ts=time.time(),
        model_name="m",
        model_version="1",
        records=[{"x": i, "city": "Oslo"} for i in range(rows)],
        predictions=[1] * rows,
        class_keys=("0", "1"),
        probabilities=np.tile(np.array([[0.4, 0.6]], dtype=np.float32), (rows, 1)),
        latency_ms=0.5,
        request_id="r",
        endpoint="/predict",
    )
    return entry._replace(**changes)


def _read_all(folder: Path) -> list[dict]:
    return [
        doc
        for path in sorted(folder.glob(f"{journal.PREFIX}*"))
        for chunk in journal.read_segment(path)
        for doc in chunk
    ]


def test_logger_journals_everything_while_mongo_is_unreachable(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    logger = PredictionLogger(
        tmp_path,
        UNREACHABLE,
        "unit",
        flush_seconds=0.02,
        retry_seconds=60,
        shutdown_seconds=10,
        on_change=lambda q, s: seen.append((q, s)),
    )
    logger.start()
    requests = [_request(rows) for rows in (1, 1, 3, 10, 10)]
    for entry in requests:
        logger.log(entry)
    ids = {i for entry in requests for i in entry.ids}
    assert logger.pending(ids | {"other"}) == ids  # accepted: feedback may refer to them
    logger.close()

    files = list(tmp_path.glob(f"{journal.PREFIX}*"))
    assert files and all(f.name.endswith(journal.SEALED) for f in files), files
    replayed = _read_all(tmp_path)
    assert [d["_id"] for d in replayed] == [i for entry in requests for i in entry.ids]
    first = replayed[0]
    assert first["features"] == {"x": 0, "city": "Oslo"} and first["prediction"] == 1
    assert first["probabilities"] == {"0": pytest.approx(0.4), "1": pytest.approx(0.6)}
    assert first["ts"].tzinfo is not None and first["endpoint"] == "/predict"
    # The shipper said MongoDB is down, so the backlog counts as spooled, not queued.
    assert (logger.queued, logger.spooled) == (0, 25) and seen[-1] == (0, 25)
    assert logger.pending(ids) == ids


def test_logger_overflow_goes_to_the_journal_not_to_memory(tmp_path: Path) -> None:
    logger = PredictionLogger(tmp_path, UNREACHABLE, "unit", max_queue=2)
    queued = [_request(4), _request(4)]
    overflow = _request(8)
    for entry in [*queued, overflow]:
        logger.log(entry)  # the third is over max_queue: written straight to disk
    assert len(logger._buffer) == 2
    assert logger.queued == 16  # rows, not requests: 2 x 4 in memory, 8 in the journal
    assert [d["_id"] for d in _read_all(tmp_path)] == overflow.ids
    logger.close()  # never started: the queued requests are journaled too
    assert len(_read_all(tmp_path)) == 16


def test_logger_seals_leftovers_of_an_earlier_process_with_its_pid(tmp_path: Path) -> None:
    # In a container the API is often pid 1 on every start: its old open segment is not ours.
    leftover = tmp_path / journal.segment_name(os.getpid(), 1, journal.OPEN)
    leftover.write_bytes(journal.encode_entry(_request(4)))
    logger = PredictionLogger(tmp_path, UNREACHABLE, "unit", retry_seconds=60, shutdown_seconds=5)
    logger.start()
    logger.close()
    assert not leftover.exists()
    assert leftover.with_suffix(journal.SEALED).exists()
    assert logger.spooled + logger.queued == 4


def test_journal_reader_skips_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / journal.segment_name(123, 1, journal.SEALED)
    path.write_bytes(journal.encode_entry(_request(3)) + b'[["half-writ')
    assert sum(len(c) for c in journal.read_segment(path)) == 3
    assert journal.count_documents(path) == 3


def test_journal_entry_reads_back_as_it_was_written() -> None:
    entry = _request(2)
    back = journal.decode_line(journal.encode_entry(entry))
    assert back is not None
    # JSON holds lists, not tuples or arrays: apart from that, the same entry comes back.
    as_written = entry._replace(class_keys=list(entry.class_keys), probabilities=None)
    assert back._replace(probabilities=None) == as_written
    assert back.probabilities == [pytest.approx(row) for row in entry.probabilities.tolist()]
    assert journal.decode_line(b'[["an-id"], 1.0]\n') is None  # not an entry: skipped as torn


def test_journal_owner_pid_is_parsed_from_the_file_name() -> None:
    assert journal.owner_pid(Path("predictions-123-1795595441072707671.open")) == 123
    assert journal.owner_pid(Path("predictions-123-adopted-17955954.jsonl")) == 123
    assert journal.owner_pid(Path("predictions-x.jsonl")) is None
    assert journal.owner_pid(Path("other-123-1.jsonl")) is None


def test_status_counts_the_rows_waiting_in_the_journal(tmp_path: Path) -> None:
    from lifecycle.core.settings import Settings
    from ops.status import count_spooled

    settings = Settings(MLOPS_HOME=str(tmp_path))
    settings.spool_dir.mkdir(parents=True)
    sealed = settings.spool_dir / journal.segment_name(123, 1, journal.SEALED)
    sealed.write_bytes(journal.encode_entry(_request(3)) + journal.encode_entry(_request(1)))
    still_open = settings.spool_dir / journal.segment_name(123, 2, journal.OPEN)
    still_open.write_bytes(journal.encode_entry(_request(10)))
    assert count_spooled(settings) == 14


def test_journal_keeps_a_value_json_cannot_hold_as_text() -> None:
    # Defensive: whatever reaches the log is written, even a value orjson cannot encode.
    entry = _request(1, records=[{"x": 2**70, "y": np.float32(0.5), "z": float("nan")}])
    (doc,) = journal.expand_entry(journal.decode_line(journal.encode_entry(entry)))
    assert doc["features"] == {"x": str(2**70), "y": 0.5, "z": None}
    assert doc["_id"] == entry.ids[0]


@pytest.mark.parametrize(
    "body",
    [b'{"x": 1,\n "city": "Oslo"}', b'[{"x": 1, "city": "Oslo"},\n {"x": 2, "city": "Bergen"}]'],
    ids=["one record", "a list"],
)
def test_journal_keeps_the_request_body_as_the_records(body: bytes) -> None:
    # /predict hands over the body itself; a newline in it must not split the journal line.
    records = orjson.loads(body)
    records = records if isinstance(records, list) else [records]
    entry = _request(len(records), records=body)
    line = journal.encode_entry(entry)
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    docs = journal.expand_entry(journal.decode_line(line))
    assert [d["features"] for d in docs] == records
    assert [d["_id"] for d in docs] == entry.ids
