"""One GetRecords batch → validated rows, dead letters, output records and log entries.

Each Kinesis record holds a JSON feature object or a list of them, or the base64 text of one:
`aws kinesis put-record --data <base64>` sends the decoded bytes with AWS CLI v2 but the base64
text itself with AWS CLI v1, and both are accepted (`parse_data`). The rows of the whole batch
are checked by the model's `RecordValidator` (the API's), record by record, and predicted
together in one call. A record that is neither, fails validation or is over the size limit
becomes one dead letter; the rest of the batch goes on.

Prediction ids are derived, not drawn: uuid5 of stream, shard, sequence number and row. A batch
replayed after a crash therefore logs the same ids, which the store skips, so the prediction log
holds each input row exactly once while outputs are at-least-once.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from lifecycle.core.errors import InputValidationError, UnseenCategoryError
from lifecycle.stores.journal import JournalEntry
from serving.holder import LoadedModel
from serving.stream.kinesis import MAX_RECORD_BYTES, Entry

ENDPOINT = "kinesis"  # the `endpoint` of the log documents
# A fixed namespace: the same (stream, shard, sequence, row) gives the same id on every run.
NAMESPACE = uuid.UUID("6f1f4f8e-3c1b-5d2a-9a57-6b7e2c1d0a13")
EXPECTED = "expected a JSON feature object or a list of them"


def prediction_id(stream: str, shard_id: str, sequence_number: str, row: int) -> str:
    """The prediction id of one input row (also its log document's `_id`)."""
    return str(uuid.uuid5(NAMESPACE, f"{stream}/{shard_id}/{sequence_number}/{row}"))


@dataclass(frozen=True)
class DeadLetter:
    """A record the consumer could not predict, and why."""

    record: dict[str, Any]
    reason: str  # json | validation | size
    error: str  # names the field and what was expected


@dataclass
class Span:
    """The rows of one input record inside the batch's matrix."""

    record: dict[str, Any]
    start: int
    count: int
    data: bytes  # the rows as JSON: the record's data, or what its base64 text decodes to
    unseen: list[dict[str, Any]] | None = None  # categories scored as missing (rows: in record)


@dataclass
class Decoded:
    """A batch after validation: what to predict, and what to dead-letter."""

    spans: list[Span] = field(default_factory=list)
    parts: list[np.ndarray] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    rows: int = 0
    base64: int = 0  # records whose data was base64 text of JSON (AWS CLI v1)
    unseen: list[dict[str, Any]] = field(default_factory=list)  # every unseen category met

    def matrix(self) -> np.ndarray:
        return self.parts[0] if len(self.parts) == 1 else np.concatenate(self.parts)


def decode(
    records: list[dict[str, Any]],
    model: LoadedModel,
    max_rows: int,
    max_bytes: int,
    unseen_missing: bool = False,
) -> Decoded:
    """Validate every record of a batch (`Data` is bytes, as boto3 returns it).

    An unseen category dead-letters its record, or with `unseen_missing`
    (MLOPS_UNSEEN_CATEGORY=missing) is scored as missing and noted in the record's span.
    """
    out = Decoded()
    validator = model.validator
    for record in records:
        data: bytes = record["Data"]
        if len(data) > max_bytes:
            error = (
                f"data: record of {len(data)} bytes is over the limit of {max_bytes} bytes "
                "(MLOPS_STREAM_MAX_RECORD_BYTES)"
            )
            out.dead.append(DeadLetter(record, "size", error))
            continue
        try:
            payload, data = parse_data(data)
        except orjson.JSONDecodeError as exc:
            out.dead.append(DeadLetter(record, "json", f"data: not valid JSON ({exc}); {EXPECTED}"))
            continue
        if data is not record["Data"]:
            out.base64 += 1
        rows = [payload] if isinstance(payload, dict) else payload
        unseen: list[dict[str, Any]] | None = [] if unseen_missing else None
        try:
            if not isinstance(rows, list):
                raise InputValidationError("data", f"{EXPECTED}; got {type(payload).__name__}")
            part = validator.encode(rows, max_rows, unseen)
        except InputValidationError as exc:
            if isinstance(exc, UnseenCategoryError):
                out.unseen.append({"field": exc.field, "value": exc.value})
            out.dead.append(DeadLetter(record, "validation", str(exc)))
            continue
        out.unseen += unseen or ()
        out.spans.append(Span(record, out.rows, len(rows), data, unseen or None))
        out.parts.append(part)
        out.rows += len(rows)
    return out


def parse_data(data: bytes) -> tuple[Any, bytes]:
    """A record's data → (its JSON value, the JSON bytes): the data itself, or the JSON object
    or list its base64 text decodes to. Raises orjson's error for the data when it is neither.

    AWS CLI v1 sends `--data` as given (v2 base64-decodes it first), so a user who follows the
    v2 instructions with v1 puts base64 text. Whitespace is dropped first: `base64` wraps its
    output at 76 characters.
    """
    try:
        return orjson.loads(data), data
    except orjson.JSONDecodeError as exc:
        error = exc
    try:
        decoded = base64.b64decode(b"".join(data.split()), validate=True)
        payload = orjson.loads(decoded)
    except (binascii.Error, ValueError):  # orjson's error is a ValueError too
        raise error from None
    if not isinstance(payload, dict | list):  # e.g. "1234" is base64 and decodes to garbage
        raise error
    return payload, decoded


@dataclass
class Published:
    """What one batch publishes and logs."""

    outputs: list[Entry] = field(default_factory=list)
    dead_letters: list[Entry] = field(default_factory=list)
    entries: list[JournalEntry] = field(default_factory=list)


def build(
    decoded: Decoded, model: LoadedModel, stream: str, shard_id: str, started: float
) -> Published:
    """Predict the batch in one call; one output per row, one log entry per record."""
    out = Published()
    if not decoded.rows:
        return out
    labels, proba = model.predict(decoded.matrix())
    probabilities = proba.tolist() if proba is not None else None
    keys = model.class_keys
    now = time.time()
    latency_ms = (time.perf_counter() - started) * 1000.0
    for span in decoded.spans:
        record, seq = span.record, span.record["SequenceNumber"]
        ids = [prediction_id(stream, shard_id, seq, row) for row in range(span.count)]
        end = span.start + span.count
        for row, pid in enumerate(ids):
            body: dict[str, Any] = {
                "prediction_id": pid,
                "prediction": labels[span.start + row],
                "model_name": model.name,
                "model_version": model.version,
                "shard_id": shard_id,
                "sequence_number": seq,
                "row": row,
            }
            if probabilities is not None:
                row_proba = probabilities[span.start + row]
                body["probabilities"] = dict(zip(keys, row_proba, strict=True))
            if span.unseen:
                seen = {u["field"]: u["value"] for u in span.unseen if u["row"] == row}
                if seen:
                    body["unseen"] = seen
            data = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
            out.outputs.append(Entry(Data=data, PartitionKey=record["PartitionKey"]))
        out.entries.append(
            JournalEntry(
                ids=ids,
                ts=now,
                model_name=model.name,
                model_version=model.version,
                records=span.data,  # exactly the records as JSON: kept verbatim
                predictions=labels[span.start : end],
                class_keys=keys,
                probabilities=proba[span.start : end] if proba is not None else None,
                latency_ms=latency_ms,
                request_id=f"{shard_id}:{seq}",
                endpoint=ENDPOINT,
                unseen=span.unseen,
            )
        )
    return out


def dead_letter(letter: DeadLetter, stream: str, shard_id: str) -> Entry:
    """The dead-letter record: the reason, the original data as text, where it came from."""
    record = letter.record
    text = record["Data"].decode("utf-8", errors="backslashreplace")
    body = {
        "error": letter.error,
        "reason": letter.reason,
        "stream": stream,
        "shard_id": shard_id,
        "sequence_number": record["SequenceNumber"],
        "partition_key": record["PartitionKey"],
        "data": text,
        "truncated": False,
    }
    data = orjson.dumps(body)
    budget = MAX_RECORD_BYTES - len(record["PartitionKey"].encode()) - 1024
    while len(data) > budget:  # an over-size record: keep its beginning, say it was cut
        text = text[: len(text) // 2]
        data = orjson.dumps({**body, "data": text, "truncated": True})
    return Entry(Data=data, PartitionKey=record["PartitionKey"])
