"""Batch scoring of a CSV or Parquet file with a registered model, streamed in chunks.

The file's columns are checked against the model's features before any row is scored, and the
input is read and written chunk by chunk, so a file larger than memory can be scored. A category
the model never saw stops the run naming column and row (MLOPS_UNSEEN_CATEGORY=reject), or is
scored as missing and named in the output's `unseen` column (`missing`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lifecycle.core.errors import InputValidationError, LifecycleError
from lifecycle.model.predictor import Predictor

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
CHUNK_ROWS = 50_000


class BatchFileError(LifecycleError):
    """The input or output file cannot be used (message names the file and the cause)."""


@dataclass(frozen=True)
class BatchResult:
    rows: int
    output: Path
    version: str
    unseen: dict[str, int] = field(default_factory=dict)  # feature → values scored as missing


def file_format(path: Path, role: str) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise BatchFileError(f"{role} file {str(path)!r}: expected a .csv or .parquet file")
    return fmt


def input_columns(path: Path) -> tuple[list[str], int | None]:
    """Column names and (for Parquet) the row count, read without loading the data."""
    fmt = file_format(path, "input")
    if not path.is_file():
        raise BatchFileError(f"input file {str(path)!r}: not found")
    try:
        if fmt == "parquet":
            meta = pq.ParquetFile(path)
            return list(meta.schema_arrow.names), meta.metadata.num_rows
        return list(pd.read_csv(path, nrows=0).columns), None
    except (pa.ArrowInvalid, pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as exc:
        raise BatchFileError(f"input file {str(path)!r}: unreadable ({exc})") from None


def check_columns(columns: list[str], predictor: Predictor, path: Path) -> None:
    """Every feature of the model must be a column of the file (extra columns are kept)."""
    missing = [name for name in predictor.spec.names if name not in columns]
    if missing:
        raise BatchFileError(
            f"input file {str(path)!r}: missing column(s) {', '.join(missing)} "
            f"(the model expects {len(predictor.spec.names)} features)"
        )


def iter_chunks(path: Path, rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    if file_format(path, "input") == "parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
            yield batch.to_pandas()
    else:
        yield from pd.read_csv(path, chunksize=rows)


def score_chunk(
    predictor: Predictor, chunk: pd.DataFrame, offset: int, unseen: list | None = None
) -> pd.DataFrame:
    """The chunk with `prediction` (and `proba_<class>` for classifiers) appended; with an
    `unseen` list (MLOPS_UNSEEN_CATEGORY=missing) also `unseen`: per row, the JSON object of its
    features whose category the model never saw (empty text when none), scored as missing."""
    found: list | None = None if unseen is None else []
    try:
        labels, proba = predictor.predict_frame(chunk, found)
    except InputValidationError as exc:
        row = _first_bad_row(predictor, chunk, exc.field)
        where = f" (row {offset + row + 1})" if row is not None else ""
        raise BatchFileError(f"column {exc.field}{where}: {str(exc).split(': ', 1)[1]}") from None
    out = chunk.copy()
    out["prediction"] = labels
    if proba is not None:
        for j, cls in enumerate(predictor.spec.classes):
            out[f"proba_{cls}"] = proba[:, j].astype(np.float64)
    if found is not None:
        by_row: dict[int, dict] = {}
        for item in found:
            by_row.setdefault(item["row"], {})[item["field"]] = item["value"]
        text = {row: orjson.dumps(fields).decode() for row, fields in by_row.items()}
        out["unseen"] = [text.get(i, "") for i in range(len(chunk))]
        unseen += [{**item, "row": item["row"] + offset} for item in found]
    return out


def score_file(
    predictor: Predictor,
    version: str,
    source: Path,
    output: Path,
    on_progress: Callable[[int], None] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    unseen_category: str = "reject",
) -> BatchResult:
    """Score `source` into `output` (.csv or .parquet), chunk by chunk.

    `unseen_category` is MLOPS_UNSEEN_CATEGORY: `reject` stops at the first unseen category,
    `missing` scores it as missing and adds the `unseen` column (`score_chunk`)."""
    out_format = file_format(output, "output")
    columns, _ = input_columns(source)
    check_columns(columns, predictor, source)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.partial")
    writer: pq.ParquetWriter | None = None
    rows = 0
    unseen: list | None = [] if unseen_category == "missing" else None
    try:
        for chunk in iter_chunks(source, chunk_rows):
            scored = score_chunk(predictor, chunk, rows, unseen)
            if out_format == "parquet":
                table = pa.Table.from_pandas(scored, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table.cast(writer.schema))
            else:
                scored.to_csv(tmp, mode="a" if rows else "w", header=not rows, index=False)
            rows += len(chunk)
            if on_progress is not None:
                on_progress(len(chunk))
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    if writer is not None:
        writer.close()
    if rows == 0:
        raise BatchFileError(f"input file {str(source)!r}: no rows")
    tmp.replace(output)  # the output appears whole or not at all
    counts = Counter(item["field"] for item in unseen or ())
    return BatchResult(rows, output, version, dict(counts))


def _first_bad_row(predictor: Predictor, chunk: pd.DataFrame, field: str) -> int | None:
    for i in range(len(chunk)):
        try:
            predictor.spec.encode_frame(chunk.iloc[i : i + 1])
        except InputValidationError as exc:
            if exc.field == field:
                return i
    return None


def count_csv_rows(path: Path) -> int:
    """Data rows of a CSV (lines minus the header), for the progress bar's total."""
    with path.open("rb") as fh:
        lines = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))
    return max(lines - 1, 0)
