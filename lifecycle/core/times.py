"""Durations and times as users type them, and as the stores hand them back: the one parser of
"3h" / "90m" / "1d" (flows, CLI, exporter) and of ISO 8601 times (tags, documents, flags)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from lifecycle.core.errors import LifecycleError

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)


class TimeValueError(LifecycleError):
    """A duration or a time cannot be read; the message names the field and what was expected."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_duration(text: str, field: str = "window") -> timedelta:
    """ "3h" → 3 hours. Units s, m, h, d, w, either case. Raises TimeValueError naming `field`."""
    match = _DURATION.match(str(text))
    if match is None:
        raise TimeValueError(
            field,
            f"expected a duration like '3h', '90m' or '1d' (units s, m, h, d, w), got {text!r}",
        )
    length = timedelta(**{_UNITS[match.group(2).lower()]: float(match.group(1))})
    if length <= timedelta(0):
        raise TimeValueError(field, f"must be longer than zero, got {text!r}")
    return length


def parse_time(text: str | None, field: str = "end") -> datetime:
    """ISO 8601 → aware UTC datetime (naive means UTC; "Z" is UTC); None or blank means now."""
    if text is None or not str(text).strip():
        return utcnow()
    try:
        return as_utc(datetime.fromisoformat(str(text).strip()))
    except ValueError:
        raise TimeValueError(
            field, f"expected an ISO 8601 time like 2024-05-01T12:00:00Z, got {text!r}"
        ) from None


def as_utc(value: datetime) -> datetime:
    """Aware UTC datetime. MongoDB hands datetimes back naive (in UTC): naive values are UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def timestamp(value: Any) -> float | None:
    """A datetime or an ISO 8601 string (a tag, a document field) as Unix seconds, else None."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    return as_utc(value).timestamp() if isinstance(value, datetime) else None


def window_bounds(length: timedelta, end: datetime) -> tuple[datetime, datetime]:
    """(start, end) of the half-open window [end - length, end)."""
    end = as_utc(end)
    return end - length, end
