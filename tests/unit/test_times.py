"""Durations and times, the one table: every part (flow, CLI, exporter, store) reads them here."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from lifecycle.core.times import (
    TimeValueError,
    as_utc,
    parse_duration,
    parse_time,
    timestamp,
    window_bounds,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3h", timedelta(hours=3)),
        ("3H", timedelta(hours=3)),
        ("90m", timedelta(minutes=90)),
        ("1d", timedelta(days=1)),
        (" 2H ", timedelta(hours=2)),
        ("1.5h", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
        ("1w", timedelta(weeks=1)),
    ],
)
def test_parse_duration_reads_units_in_either_case(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "expected a duration like '3h'"),
        ("3", "expected a duration like '3h'"),
        ("h", "expected a duration like '3h'"),
        ("3 hours", "expected a duration like '3h'"),
        ("-3h", "expected a duration like '3h'"),
        ("3y", "expected a duration like '3h'"),
        ("3h30m", "expected a duration like '3h'"),
        ("0h", "must be longer than zero"),
    ],
)
def test_parse_duration_rejects_in_one_line_naming_the_field(text: str, why: str) -> None:
    with pytest.raises(TimeValueError) as caught:
        parse_duration(text, "--window")
    message = str(caught.value)
    assert message.startswith(f"--window: {why}")
    assert "\n" not in message and repr(text) in message


def test_parse_time_reads_iso_and_treats_naive_as_utc() -> None:
    assert parse_time("2026-01-05T12:00:00Z") == datetime(2026, 1, 5, 12, tzinfo=UTC)
    assert parse_time("2026-01-05T12:00:00") == datetime(2026, 1, 5, 12, tzinfo=UTC)
    plus_two = parse_time("2026-01-05T14:00:00+02:00")
    assert plus_two == datetime(2026, 1, 5, 12, tzinfo=UTC) and plus_two.tzinfo == UTC


def test_parse_time_defaults_to_now() -> None:
    before = datetime.now(UTC)
    assert before <= parse_time(None) <= datetime.now(UTC)


def test_parse_time_rejects_naming_the_field() -> None:
    with pytest.raises(TimeValueError, match=r"^--end: expected an ISO 8601 time"):
        parse_time("yesterday", "--end")


def test_timestamp_reads_tags_documents_and_rejects_garbage() -> None:
    moment = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert timestamp(moment.isoformat()) == moment.timestamp()
    assert timestamp("2025-01-02T03:04:05Z") == moment.timestamp()
    assert timestamp(moment.replace(tzinfo=None)) == moment.timestamp()
    assert timestamp("yesterday") is None
    assert timestamp(None) is None


def test_as_utc_converts_offsets_and_keeps_naive_as_utc() -> None:
    naive = datetime(2026, 1, 5, 12)
    assert as_utc(naive) == datetime(2026, 1, 5, 12, tzinfo=UTC)
    east = datetime(2026, 1, 5, 14, tzinfo=timezone(timedelta(hours=2)))
    assert as_utc(east).utcoffset() == timedelta(0)


def test_window_bounds_end_at_the_given_time() -> None:
    end = datetime(2026, 1, 5, 12, tzinfo=UTC)
    start, stop = window_bounds(timedelta(hours=3), end)
    assert (start, stop) == (datetime(2026, 1, 5, 9, tzinfo=UTC), end)


@pytest.mark.parametrize(
    ("args", "env", "field"),
    [
        (["--window", "3 hours"], {}, "--window"),
        (["--end", "yesterday"], {}, "--end"),
        ([], {"MLOPS_REPORT_WINDOW": "three hours"}, "MLOPS_REPORT_WINDOW"),
    ],
)
def test_mlops_report_bad_duration_or_time_is_one_line_error(
    args: list[str], env: dict[str, str], field: str, tmp_path: Path
) -> None:
    import os

    proc = subprocess.run(
        [str(Path(sys.executable).parent / "mlops"), "report", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MLOPS_HOME": str(tmp_path), **env},
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}: "), proc.stderr
