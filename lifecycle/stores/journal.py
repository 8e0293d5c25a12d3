"""The prediction journal: append-only JSON-lines segment files under MLOPS_HOME/spool.

Every accepted prediction is written here first (by the API's writer thread) and shipped to
MongoDB from here (by the shipper process, `serving.shipper`). One line is one request, a
`JournalEntry`: its prediction ids, time, model, validated records, predictions and
probabilities (`encode_entry`); the shipper expands it into `predictions` documents
(`read_segment`), so the API never builds a document per row. A segment is named for the API
process that wrote it:

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
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson

from lifecycle.stores.documents import PredictionDocument, prediction_document

log = logging.getLogger(__name__)

PREFIX = "predictions-"
OPEN = ".open"
SEALED = ".jsonl"
CHUNK = 1000  # documents per insert_many when shipping a segment
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS


class JournalEntry(NamedTuple):
    """One accepted request, as the prediction routes hand it to the logger and as one journal
    line holds it (a JSON array of these fields, in this order)."""

    ids: list[str]  # one prediction id per row
    ts: float  # Unix time
    model_name: str
    model_version: str
    # The validated records; on the way in also the request body itself when it is exactly the
    # records as JSON (a record or a list); read back, a one-record body is that record (dict).
    records: list[Any] | dict[str, Any] | bytes
    predictions: list[Any]
    class_keys: Sequence[str]  # str(class) per probability column; empty for regression
    # (rows, classes): a numpy array on the way in, nested lists read back; None for regression
    probabilities: Any
    latency_ms: float
    request_id: str
    endpoint: str
    # The shadow model's answer for the same rows (serving.shadow), None without a shadow:
    # {model_version, predictions, class_keys, probabilities}. Last and defaulted, so lines
    # written before it existed still decode.
    shadow: dict[str, Any] | None = None
    # MLOPS_UNSEEN_CATEGORY=missing: each unseen category scored as missing, as
    # {"row", "field", "value"} (row: within this entry). None when there were none.
    unseen: list[dict[str, Any]] | None = None


def segment_name(pid: int, seq: int | str, suffix: str) -> str:
    return f"{PREFIX}{pid}-{seq}{suffix}"


def encode_entry(entry: JournalEntry) -> bytes:
    """One request's predictions as one journal line.

    A request body given as `records` goes in verbatim (valid JSON); a newline in JSON is always
    whitespace, so it becomes a space and the line stays one line.
    """
    fields = list(entry)  # orjson serializes a plain list, not a NamedTuple
    if isinstance(entry.records, bytes):
        fields[JournalEntry._fields.index("records")] = orjson.Fragment(
            entry.records.replace(b"\n", b" ")
        )
    try:
        return orjson.dumps(fields, default=_jsonable, option=_OPTIONS)
    except TypeError:
        # A value JSON cannot hold as it is (an integer beyond 64 bits; the validator refuses
        # those today): an accepted prediction is never dropped with its batch over one
        # value, which is kept as text instead.
        return orjson.dumps(_plain(fields), default=_jsonable, option=_OPTIONS)


def decode_line(line: bytes) -> JournalEntry | None:
    """A journal line back into its entry; None for a torn line (a crash mid-write)."""
    try:
        return JournalEntry(*orjson.loads(line))
    except (orjson.JSONDecodeError, TypeError):
        return None


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


def expand_entry(entry: JournalEntry) -> list[PredictionDocument]:
    """A journal entry (as read back) into `predictions` documents, one per row."""
    when = datetime.fromtimestamp(entry.ts, UTC)
    records = entry.records
    if isinstance(records, dict):  # a one-record request body, kept as it came
        records = [records]
    probabilities = entry.probabilities
    unseen: dict[int, dict[str, Any]] = {}
    for item in entry.unseen or ():
        unseen.setdefault(item["row"], {})[item["field"]] = item["value"]
    return [
        prediction_document(
            prediction_id,
            when,
            entry.model_name,
            entry.model_version,
            records[i],
            entry.predictions[i],
            (
                dict(zip(entry.class_keys, probabilities[i], strict=True))
                if probabilities is not None
                else None
            ),
            entry.latency_ms,
            entry.request_id,
            entry.endpoint,
            _shadow_row(entry.shadow, i),
            unseen.get(i),
        )
        for i, prediction_id in enumerate(entry.ids)
    ]


def _shadow_row(shadow: dict[str, Any] | None, i: int) -> dict[str, Any] | None:
    """Row `i` of a shadow answer, in the `shadow` field's shape (lifecycle.stores.documents)."""
    if shadow is None:
        return None
    probabilities = shadow.get("probabilities")
    return {
        "model_version": shadow["model_version"],
        "prediction": shadow["predictions"][i],
        "probabilities": (
            dict(zip(shadow["class_keys"], probabilities[i], strict=True))
            if probabilities is not None
            else None
        ),
    }


def read_entries(path: Path) -> Iterator[JournalEntry]:
    """The entries of a segment, in order; a torn last line (crash mid-write) is skipped."""
    with open(path, "rb") as fh:
        for line in fh:
            entry = decode_line(line)
            if entry is None:
                log.warning("skipping a torn line in %s", path.name)
                continue
            yield entry


def read_segment(path: Path, chunk: int = CHUNK) -> Iterator[list[PredictionDocument]]:
    """Documents of a segment in chunks of about `chunk`."""
    batch: list[PredictionDocument] = []
    for entry in read_entries(path):
        batch.extend(expand_entry(entry))
        if len(batch) >= chunk:
            yield batch
            batch = []
    if batch:
        yield batch


def count_documents(path: Path) -> int:
    """Rows in a segment, from each entry's ids alone (no documents are built).

    Quiet about a torn last line: `mlops status` counts segments while they are written."""
    with open(path, "rb") as fh:
        return sum(len(entry.ids) for entry in map(decode_line, fh) if entry is not None)


def owner_pid(path: Path) -> int | None:
    """The process that owns a segment, from its name (`predictions-<pid>-...`)."""
    pid, _, _ = path.name.removeprefix(PREFIX).partition("-")
    return int(pid) if path.name.startswith(PREFIX) and pid.isdigit() else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
