"""The prediction journal: append-only JSON-lines segment files under MLOPS_HOME/spool.

Every accepted prediction is written here first (by the API's writer thread) and shipped to
MongoDB from here (by the shipper process, `serving.shipper`). One line is one request: its
prediction ids, time, model, validated records, predictions and probabilities (`encode_entry`);
the shipper expands it into `predictions` documents (`read_segment`), so the API never builds a
document per row. A segment is named for the API process that wrote it:

    predictions-<pid>-<seq>.open    still being appended to by process <pid>
    predictions-<pid>-<seq>.jsonl   sealed: complete, ready to ship, deleted once in MongoDB

A segment whose owner process is gone (crash, older run, another worker that stopped) is an
orphan: the next shipper to see it claims it by renaming it to its own owner's name, so exactly
one shipper replays it. Replays are idempotent because each document's `_id` is its prediction
id and the store skips ids it already holds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from lifecycle.store import prediction_document

log = logging.getLogger(__name__)

PREFIX = "predictions-"
OPEN = ".open"
SEALED = ".jsonl"
CHUNK = 1000  # documents per insert_many when shipping a segment
ENTRY = "p1"  # tags a request line (the format may change; old lines stay readable)
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS


def segment_name(pid: int, seq: int | str, suffix: str) -> str:
    return f"{PREFIX}{pid}-{seq}{suffix}"


def encode_entry(
    ids: list[str],
    ts: float,
    model_name: str,
    model_version: str,
    records: list[Any] | bytes,
    predictions: list[Any],
    class_keys: tuple[str, ...],
    probabilities: np.ndarray | None,
    latency_ms: float,
    request_id: str,
    endpoint: str,
) -> bytes:
    """One request's predictions as one journal line.

    `ts` is Unix time; `probabilities` the model's (rows, classes) array, serialized as is.
    `records` may also be the request body itself (valid JSON: a record or a list of them),
    which goes in verbatim; a newline in JSON is always whitespace, so it becomes a space.
    """
    if isinstance(records, bytes):
        records = orjson.Fragment(records.replace(b"\n", b" "))
    entry = [ENTRY, ids, ts, model_name, model_version, records, predictions, class_keys]
    entry += [probabilities, latency_ms, request_id, endpoint]
    try:
        return orjson.dumps(entry, default=_jsonable, option=_OPTIONS)
    except TypeError:
        # A value JSON cannot hold as it is (an integer beyond 64 bits; the validator refuses
        # those today): an accepted prediction is never dropped with its batch over one
        # value, which is kept as text instead.
        return orjson.dumps(_plain(entry), default=_jsonable, option=_OPTIONS)


def _jsonable(value: Any) -> Any:
    """orjson's fallback for types it does not serialize itself."""
    if isinstance(value, np.ndarray):
        return value.tolist()  # e.g. a non-contiguous array
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def expand_entry(entry: list[Any]) -> list[dict[str, Any]]:
    """A journal line back into `predictions` documents, one per row."""
    _, ids, ts, name, version, records, preds, keys, probs, latency, request_id, endpoint = entry
    when = datetime.fromtimestamp(ts, UTC)
    if isinstance(records, dict):  # a one-record request body, kept as it came
        records = [records]
    return [
        prediction_document(
            ids[i],
            when,
            name,
            version,
            records[i],
            preds[i],
            dict(zip(keys, probs[i], strict=True)) if probs is not None else None,
            latency,
            request_id,
            endpoint,
        )
        for i in range(len(ids))
    ]


def read_segment(path: Path, chunk: int = CHUNK) -> Iterator[list[dict[str, Any]]]:
    """Documents of a segment in chunks; a torn last line (crash mid-write) is skipped."""
    batch: list[dict[str, Any]] = []
    with open(path, "rb") as fh:
        for line in fh:
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError:
                log.warning("skipping a torn line in %s", path.name)
                continue
            if isinstance(item, dict):  # a whole document, as earlier releases spooled them
                item["ts"] = datetime.fromisoformat(item["ts"])
                batch.append(item)
            else:
                batch.extend(expand_entry(item))
            if len(batch) >= chunk:
                yield batch
                batch = []
    if batch:
        yield batch


def count_documents(path: Path) -> int:
    """Rows in a segment, from each line's ids alone (no documents are built)."""
    count = 0
    with open(path, "rb") as fh:
        for line in fh:
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError:  # a torn last line, skipped as read_segment does
                continue
            count += 1 if isinstance(item, dict) else len(item[1])
    return count


def owner_pid(path: Path) -> int | None:
    """The process that owns a segment, from its name.

    Also reads the names of earlier releases' spool files (`predictions-<pid>.jsonl` and
    `predictions-<pid>.jsonl.<ns>.replay-<pid2>`, where the last pid owns it), so a spool left
    by an older version is still replayed after an upgrade.
    """
    name = path.name
    tail = name.rsplit("replay-", 1)[1] if "replay-" in name else name[len(PREFIX) :]
    digits = ""
    for char in tail:
        if not char.isdigit():
            break
        digits += char
    return int(digits) if digits else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
