"""The prediction logger's spool: with MongoDB unreachable nothing is dropped, and the spool
file reads back exactly (a torn last line from a crash is skipped)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from lifecycle.store import PredictionStore
from serving.logger import PredictionLogger, _owner_pid, _read_spool


def _docs(n: int) -> list[dict]:
    ts = datetime.now(UTC)
    return [
        {
            "_id": str(uuid.uuid4()),
            "ts": ts,
            "model_name": "m",
            "model_version": "1",
            "features": {"x": i},
            "prediction": 1,
            "probabilities": {"0": 0.4, "1": 0.6},
            "latency_ms": 0.5,
            "request_id": "r",
            "endpoint": "/predict",
        }
        for i in range(n)
    ]


def _unreachable() -> PredictionStore:
    return PredictionStore("mongodb://127.0.0.1:9", "unit", timeout_ms=100)


def test_logger_spools_everything_while_mongo_is_unreachable(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    logger = PredictionLogger(
        _unreachable(),
        tmp_path,
        flush_seconds=0.02,
        retry_seconds=60,
        on_change=lambda q, s: seen.append((q, s)),
    )
    logger.start()
    docs = _docs(25)
    for i in range(0, 25, 5):
        logger.log(docs[i : i + 5])
    ids = {d["_id"] for d in docs}
    assert logger.pending(ids | {"other"}) == ids  # accepted: feedback may refer to them
    logger.close()
    files = list(tmp_path.glob("predictions-*.jsonl"))
    assert len(files) == 1
    replayed = [d for chunk in _read_spool(files[0]) for d in chunk]
    assert [d["_id"] for d in replayed] == [d["_id"] for d in docs]
    assert replayed[0]["ts"] == docs[0]["ts"] and replayed[0]["features"] == {"x": 0}
    assert logger.spooled == 25 and seen[-1] == (0, 25)


def test_logger_overflow_goes_to_the_spool_not_to_memory(tmp_path: Path) -> None:
    logger = PredictionLogger(_unreachable(), tmp_path, max_queue=10)
    logger.spool_dir.mkdir(parents=True, exist_ok=True)
    logger.log(_docs(8))
    logger.log(_docs(8))  # over max_queue: written straight to disk
    assert logger.queued == 8 and logger.spooled == 8


def test_spool_reader_skips_a_torn_last_line(tmp_path: Path) -> None:
    logger = PredictionLogger(_unreachable(), tmp_path)
    tmp_path.mkdir(exist_ok=True)
    logger._spool(_docs(3))
    logger.close()
    path = next(tmp_path.glob("predictions-*.jsonl"))
    with open(path, "ab") as fh:
        fh.write(b'{"_id": "half-writ')
    assert sum(len(c) for c in _read_spool(path)) == 3


def test_spool_owner_pid_is_parsed_from_the_file_name() -> None:
    assert _owner_pid(Path("predictions-123.jsonl")) == 123
    assert _owner_pid(Path("predictions-123.jsonl.1700000000.replay-456")) == 456
    assert _owner_pid(Path("predictions-x.jsonl")) is None
