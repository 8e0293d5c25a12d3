"""Small static SVG charts for the index page: no JavaScript, no fonts or scripts fetched, so the
page works offline and behind any proxy."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from html import escape

WIDTH, HEIGHT = 560, 240
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 34, 46
COLOR = "#2563eb"
ALERT = "#dc2626"


def time_chart(
    points: Sequence[tuple[datetime, float]],
    title: str,
    y_label: str,
    y_range: tuple[float, float] | None = None,
    threshold: float | None = None,
) -> str:
    """A line over time (x proportional to time), with an optional dashed threshold."""
    if not points:
        return empty_chart(title)
    points = sorted(points)
    lo, hi = y_range or _padded([v for _, v in points] + ([threshold] if threshold else []))
    t0, t1 = points[0][0].timestamp(), points[-1][0].timestamp()
    span = (t1 - t0) or 1.0

    def x(ts: datetime) -> float:
        if t1 == t0:
            return LEFT + (WIDTH - LEFT - RIGHT) / 2
        return LEFT + (ts.timestamp() - t0) / span * (WIDTH - LEFT - RIGHT)

    parts = [_frame(title, y_label, lo, hi)]
    if threshold is not None:
        ty = _y(threshold, lo, hi)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" '
            f'stroke="{ALERT}" stroke-dasharray="5 4" stroke-width="1"/>'
            f'<text x="{LEFT + 4}" y="{ty - 4:.1f}" text-anchor="start" fill="{ALERT}" '
            f'font-size="10">threshold {threshold:g}</text>'
        )
    coords = [(x(ts), _y(v, lo, hi)) for ts, v in points]
    if len(coords) > 1:
        path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{COLOR}" stroke-width="2"/>')
    for (ts, v), (cx, cy) in zip(points, coords, strict=True):
        over = threshold is not None and v > threshold
        parts.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" fill="{ALERT if over else COLOR}">'
            f"<title>{escape(ts.strftime('%Y-%m-%d %H:%M'))} UTC: {v:.3f}</title></circle>"
        )
    parts.append(_x_labels([(points[0][0], LEFT), (points[-1][0], WIDTH - RIGHT)]))
    return _svg(title, "".join(parts))


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    title: str,
    y_label: str,
    y_range: tuple[float, float] | None = None,
    notes: Sequence[str] | None = None,
) -> str:
    """One bar per label (days, weeks, versions), each with its value on top."""
    if not values:
        return empty_chart(title)
    lo, hi = y_range or _padded(list(values))
    inner = WIDTH - LEFT - RIGHT
    slot = inner / len(values)
    bar = max(min(slot * 0.7, 60), 2)
    parts = [_frame(title, y_label, lo, hi)]
    step = max(1, math.ceil(len(labels) / 10))  # at most ~10 axis labels
    base = _y(lo, lo, hi)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        cx = LEFT + slot * (i + 0.5)
        top = _y(value, lo, hi)
        note = f" ({notes[i]})" if notes else ""
        parts.append(
            f'<rect x="{cx - bar / 2:.1f}" y="{top:.1f}" width="{bar:.1f}" '
            f'height="{max(base - top, 1):.1f}" fill="{COLOR}" opacity="0.85">'
            f"<title>{escape(label)}: {value:.4f}{escape(note)}</title></rect>"
        )
        if len(values) <= 16:
            parts.append(
                f'<text x="{cx:.1f}" y="{top - 4:.1f}" text-anchor="middle" font-size="10" '
                f'fill="#111827">{value:.3f}</text>'
            )
        if i % step == 0:
            parts.append(
                f'<text x="{cx:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
                f'font-size="10" fill="#374151">{escape(label)}</text>'
            )
    return _svg(title, "".join(parts))


def empty_chart(title: str) -> str:
    """A placeholder with the chart's title, so the layout stays put before the first data."""
    body = (
        f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="13" font-weight="600" '
        f'fill="#111827">{escape(title)}</text>'
        f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" font-size="12" '
        'fill="#6b7280">no data yet</text>'
    )
    return _svg(title, body)


def _svg(title: str, body: str) -> str:
    return (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}" '
        'font-family="system-ui, sans-serif">'
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>{body}</svg>'
    )


def _frame(title: str, y_label: str, lo: float, hi: float) -> str:
    """Title, axes, horizontal grid lines with tick values, and the y label."""
    parts = [
        f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="13" font-weight="600" '
        f'fill="#111827">{escape(title)}</text>'
    ]
    for tick in _ticks(lo, hi):
        ty = _y(tick, lo, hi)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" '
            'stroke="#e5e7eb" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{ty + 3:.1f}" text-anchor="end" font-size="10" '
            f'fill="#374151">{tick:g}</text>'
        )
    parts.append(
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" stroke="#9ca3af"/>'
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{HEIGHT - BOTTOM}" '
        f'y2="{HEIGHT - BOTTOM}" stroke="#9ca3af"/>'
        f'<text transform="translate(12 {(TOP + HEIGHT - BOTTOM) / 2}) rotate(-90)" '
        f'text-anchor="middle" font-size="11" fill="#374151">{escape(y_label)}</text>'
    )
    return "".join(parts)


def _x_labels(marks: Sequence[tuple[datetime, float]]) -> str:
    out = []
    for i, (ts, cx) in enumerate(marks):
        anchor = "start" if i == 0 else "end"
        out.append(
            f'<text x="{cx:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="{anchor}" '
            f'font-size="10" fill="#374151">{escape(ts.strftime("%Y-%m-%d %H:%M"))}</text>'
        )
    return "".join(out)


def _y(value: float, lo: float, hi: float) -> float:
    span = (hi - lo) or 1.0
    frac = (min(max(value, lo), hi) - lo) / span
    return HEIGHT - BOTTOM - frac * (HEIGHT - BOTTOM - TOP)


def _padded(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.1 or max(abs(hi) * 0.1, 0.05)
    return lo - pad, hi + pad


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round tick values between lo and hi."""
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks
