"""Window lengths and ends as users type them (`mlops report --window 3h --end ...`)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from lifecycle.windows import WindowError, parse_end, parse_window, window_bounds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3h", timedelta(hours=3)),
        ("90m", timedelta(minutes=90)),
        ("1d", timedelta(days=1)),
        (" 2H ", timedelta(hours=2)),
        ("1.5h", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
        ("1w", timedelta(weeks=1)),
    ],
)
def test_parse_window_reads_units(text: str, expected: timedelta) -> None:
    assert parse_window(text) == expected


@pytest.mark.parametrize("text", ["", "3", "h", "3 hours", "-3h", "0h", "3y", "3h30m"])
def test_parse_window_rejects_naming_the_field(text: str) -> None:
    with pytest.raises(WindowError, match=r"^--window: "):
        parse_window(text, "--window")


def test_parse_end_reads_iso_and_treats_naive_as_utc() -> None:
    assert parse_end("2026-01-05T12:00:00Z") == datetime(2026, 1, 5, 12, tzinfo=UTC)
    assert parse_end("2026-01-05T12:00:00") == datetime(2026, 1, 5, 12, tzinfo=UTC)
    plus_two = parse_end("2026-01-05T14:00:00+02:00")
    assert plus_two == datetime(2026, 1, 5, 12, tzinfo=UTC) and plus_two.tzinfo == UTC


def test_parse_end_defaults_to_now() -> None:
    before = datetime.now(UTC)
    assert before <= parse_end(None) <= datetime.now(UTC)


def test_parse_end_rejects_naming_the_field() -> None:
    with pytest.raises(WindowError, match=r"^--end: expected an ISO 8601 time"):
        parse_end("yesterday", "--end")


def test_window_bounds_end_at_the_given_time() -> None:
    end = datetime(2026, 1, 5, 14, tzinfo=timezone(timedelta(hours=2)))
    start, stop = window_bounds(timedelta(hours=3), end)
    assert stop == datetime(2026, 1, 5, 12, tzinfo=UTC)
    assert start == datetime(2026, 1, 5, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("args", "field"),
    [(["--window", "3 hours"], "--window"), (["--end", "yesterday"], "--end")],
)
def test_mlops_report_bad_option_is_one_line_error(args: list[str], field: str) -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "mlops"), "report", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}: "), proc.stderr
