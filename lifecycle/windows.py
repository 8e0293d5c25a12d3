"""Report windows: durations written as "3h", "90m", "1d", and the window end as ISO 8601."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from lifecycle.errors import LifecycleError

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)


class WindowError(LifecycleError):
    """A window length or end time cannot be read; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


def parse_window(text: str, field: str = "window") -> timedelta:
    """ "3h" → 3 hours. Units: s, m, h, d, w. Raises WindowError naming `field` otherwise."""
    match = _PATTERN.match(str(text))
    if match is None:
        raise WindowError(
            field,
            f"expected a duration like '3h', '90m' or '1d' (units s, m, h, d, w), got {text!r}",
        )
    length = timedelta(**{_UNITS[match.group(2).lower()]: float(match.group(1))})
    if length <= timedelta(0):
        raise WindowError(field, f"must be longer than zero, got {text!r}")
    return length


def parse_end(text: str | None, field: str = "end") -> datetime:
    """ISO 8601 → aware UTC datetime (naive means UTC); None means now."""
    if text is None or not str(text).strip():
        return datetime.now(UTC)
    raw = str(text).strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"  # Python 3.11 parses "Z", but be explicit about its meaning
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise WindowError(
            field, f"expected an ISO 8601 time like 2024-05-01T12:00:00Z, got {text!r}"
        ) from None
    return as_utc(value)


def as_utc(value: datetime) -> datetime:
    """Aware UTC datetime; naive values are taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def window_bounds(length: timedelta, end: datetime) -> tuple[datetime, datetime]:
    """(start, end) of the half-open window [end - length, end)."""
    end = as_utc(end)
    return end - length, end
