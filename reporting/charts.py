"""The index page's charts, drawn with matplotlib as inline SVG: text stays text (no embedded or
fetched fonts), there are no scripts, so the page works offline and behind any proxy.

Figures are built on `matplotlib.figure.Figure` directly, never through pyplot: no global figure
registry, no GUI backend, safe in a Prefect worker thread.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from html import escape
from typing import Any

WIDTH, HEIGHT = 560, 240  # CSS pixels; SVG user units are points, so the figure is at 72 dpi
DPI = 72
COLOR = "#2563eb"
ALERT = "#dc2626"
# One colour per version line, in order (the first is the page's blue).
PALETTE = ("#2563eb", "#d97706", "#059669", "#7c3aed", "#db2777", "#0891b2")
INK, MUTED, GRID, AXIS = "#111827", "#374151", "#e5e7eb", "#9ca3af"
MAX_VALUE_LABELS = 16  # up to this many bars, each shows its value and has a hover title
MAX_AXIS_LABELS = 10
MAX_MARKERS = 200  # a dot per point of a time chart up to this many points
LEFT, RIGHT = 0.1, 0.97  # the axes' edges, as fractions of the width
CHAR_WIDTH, LABEL_GAP = 6.5, 14  # px: a digit of the 10 px tick font, and room between labels

STYLE = {
    # Text as <text> elements in the page's fonts: nothing embedded, nothing fetched.
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "system-ui", "Segoe UI", "Helvetica", "Arial"],
    "font.size": 10,
    # Labels come from the prediction log and the registry: "$" is a character, not mathtext.
    "text.parse_math": False,
    "axes.edgecolor": AXIS,
    "axes.labelcolor": MUTED,
    "axes.labelsize": 11,
    "axes.titlesize": 13,
    "axes.titleweight": "bold",
    "axes.titlecolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "axes.axisbelow": True,
    "grid.color": GRID,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
}


def time_chart(
    points: Sequence[tuple[datetime, float]],
    title: str,
    y_label: str,
    y_range: tuple[float, float] | None = None,
    threshold: float | None = None,
) -> str:
    """A line over time (x proportional to time), with a dot per point up to 200 points; points
    above `threshold` in red, and the threshold as a dashed red line."""
    if not points:
        return empty_chart(title)
    points = sorted(points)
    times = [ts for ts, _ in points]
    values = [v for _, v in points]
    with _figure(title) as (fig, ax):
        marker = "o" if len(points) <= MAX_MARKERS else None  # beyond, dots merge into a band
        ax.plot(times, values, color=COLOR, linewidth=2, marker=marker, markersize=5)
        if threshold is not None:
            _threshold_line(ax, threshold, [(ts, v) for ts, v in points if v > threshold])
        _time_axis(ax, times)
        ax.set_ylim(*(y_range or _padded([*values, *([threshold] if threshold else [])])))
        ax.set_ylabel(y_label)
        return _svg(fig, title)


def lines_chart(
    series: Mapping[str, Sequence[tuple[datetime, float]]],
    title: str,
    y_label: str,
) -> str:
    """One line over time per named series (model versions), with a legend; dots up to 200
    points a line."""
    series = {name: sorted(points) for name, points in series.items() if points}
    if not series:
        return empty_chart(title)
    values = [v for points in series.values() for _, v in points]
    times = [ts for points in series.values() for ts, _ in points]
    with _figure(title) as (fig, ax):
        for i, (name, points) in enumerate(series.items()):
            marker = "o" if len(points) <= MAX_MARKERS else None
            color = PALETTE[i % len(PALETTE)]
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, color=color, linewidth=2, marker=marker, markersize=5, label=name)
        _time_axis(ax, times)
        ax.set_ylim(*_padded(values))
        ax.set_ylabel(y_label)
        ax.legend(loc="best", frameon=False, fontsize=9, ncols=min(len(series), 4))
        return _svg(fig, title)


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    title: str,
    y_label: str,
    y_range: tuple[float, float] | None = None,
    notes: Sequence[str] | None = None,
) -> str:
    """One bar per label (days, weeks, versions). Up to 16 bars, each shows its value on top
    and has a hover title with its label, value and note."""
    if not values:
        return empty_chart(title)
    lo, hi = y_range or _padded(list(values))
    prefix = _slug(title)
    with _figure(title) as (fig, ax):
        if len(values) <= MAX_VALUE_LABELS:
            _labelled_bars(ax, values, lo, prefix)
        else:
            _plain_bars(ax, values, lo)
        step = _label_step(labels)
        ax.set_xticks(range(0, len(labels), step), list(labels)[::step])
        ax.tick_params(axis="x", length=0)
        ax.set_xlim(-0.6, len(values) - 0.4)
        ax.set_ylim(lo, hi)
        ax.set_ylabel(y_label)
        svg = _svg(fig, title)
    if len(values) > MAX_VALUE_LABELS:
        return svg
    tips = [
        f"{label}: {value:.4f}" + (f" ({notes[i]})" if notes else "")
        for i, (label, value) in enumerate(zip(labels, values, strict=True))
    ]
    return _with_titles(svg, prefix, tips)


def empty_chart(title: str) -> str:
    """A placeholder with the chart's title, so the layout stays put before the first data."""
    with _figure(title) as (fig, ax):
        ax.axis("off")
        ax.text(0.5, 0.5, "no data yet", ha="center", va="center", color="#6b7280", fontsize=12)
        return _svg(fig, title)


def _time_axis(ax: Any, times: Sequence[datetime]) -> None:
    """Concise date ticks; a single instant is centred in a day-wide axis."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    if min(times) == max(times):
        ax.set_xlim(mdates.date2num(times[0]) - 0.5, mdates.date2num(times[0]) + 0.5)


def _threshold_line(ax: Any, threshold: float, over: Sequence[tuple[datetime, float]]) -> None:
    """The dashed threshold with its label, and the points above it marked red."""
    if over:
        ax.plot(*zip(*over, strict=True), "o", color=ALERT, markersize=5, zorder=3)
    ax.axhline(threshold, color=ALERT, linestyle=(0, (5, 4)), linewidth=1)
    ax.annotate(
        f"threshold {threshold:g}",
        (0, threshold),
        xycoords=("axes fraction", "data"),
        xytext=(4, 4),
        textcoords="offset points",
        color=ALERT,
        bbox={"facecolor": "#ffffff", "edgecolor": "none", "alpha": 0.8, "pad": 1},
    )


def _labelled_bars(ax: Any, values: Sequence[float], lo: float, prefix: str) -> None:
    """A few bars: one patch each, its value on top, its gid kept for the hover title."""
    width = 0.7 if len(values) > 1 else 0.25  # one bar is not a wall
    bars = ax.bar(range(len(values)), [v - lo for v in values], width, bottom=lo)
    for i, bar in enumerate(bars):
        bar.set(gid=f"{prefix}-bar-{i}", color=COLOR, alpha=0.85)
    ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], padding=2, color=INK)


def _plain_bars(ax: Any, values: Sequence[float], lo: float) -> None:
    """Many bars as one collection: a patch per bar costs ~2 ms of CPU (366 daily bars: 0.8 s
    as patches, 0.2 s as one collection, on 2 busy cores), and bars a few pixels wide are read
    off the axis, not labelled or hovered."""
    from matplotlib.collections import PolyCollection

    boxes = [
        [(i - 0.35, lo), (i - 0.35, v), (i + 0.35, v), (i + 0.35, lo)] for i, v in enumerate(values)
    ]
    ax.add_collection(PolyCollection(boxes, facecolors=COLOR, edgecolors="none", alpha=0.85))


@contextmanager
def _figure(title: str) -> Iterator[tuple[Any, Any]]:
    """A titled figure of the page's chart size, in the page's style.

    matplotlib is imported here, not at module import: its first import builds a font cache.
    """
    import matplotlib
    from matplotlib.figure import Figure

    # A salt per chart keeps the clip-path ids of several inline SVGs apart and the page
    # byte-for-byte reproducible (matplotlib's default salt is a random uuid per save).
    with matplotlib.rc_context({**STYLE, "svg.hashsalt": title}):
        fig = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI)
        fig.subplots_adjust(left=LEFT, right=RIGHT, top=0.86, bottom=0.16)
        ax = fig.add_subplot()
        ax.set_title(title, pad=10)
        yield fig, ax


_PROLOGUE = re.compile(r"^.*?(?=<svg\b)", re.DOTALL)
# matplotlib numbers its groups per file ("figure_1", "axes_1", "text_3"): four inline SVGs
# would repeat them in one page. Nothing refers to them (references use hashed ids, "p1f3a...").
_GROUP_IDS = re.compile(r' id="[A-Za-z][\w.]*_\d+"')


def _svg(fig: Any, title: str) -> str:
    """The figure as an `<svg>` element to inline in HTML: no XML prologue, metadata or numbered
    ids, and no namespace but SVG's own (the HTML parser maps `xlink:href` by itself)."""
    buffer = io.StringIO()
    fig.savefig(
        buffer,
        format="svg",
        facecolor="#ffffff",
        metadata={"Creator": None, "Date": None, "Format": None, "Type": None},
    )
    svg = _GROUP_IDS.sub("", _PROLOGUE.sub("", buffer.getvalue(), count=1))
    svg = svg.replace(' xmlns:xlink="http://www.w3.org/1999/xlink"', "", 1)
    return svg.replace(
        "<svg ", f'<svg class="chart" role="img" aria-label="{escape(title)}" ', 1
    ).strip()


def _with_titles(svg: str, prefix: str, tips: Sequence[str]) -> str:
    """Hover titles on the bars, whose groups carry the gids set when they were drawn
    (matplotlib writes an artist's gid as its group's id, and has no API for <title>)."""
    group = re.compile(rf'<g id="{re.escape(prefix)}-bar-(\d+)">')
    return group.sub(lambda m: f"{m.group(0)}<title>{escape(tips[int(m.group(1))])}</title>", svg)


def _slug(title: str) -> str:
    """An id prefix from a chart title: ids must be unique across the page's inline SVGs."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "chart"


def _label_step(labels: Sequence[str]) -> int:
    """Label every n-th bar, so that the labels do not overlap (at most 10 of them)."""
    plot_width = WIDTH * (RIGHT - LEFT)
    fit = int(plot_width // (max(map(len, labels)) * CHAR_WIDTH + LABEL_GAP))
    return max(1, math.ceil(len(labels) / max(1, min(fit, MAX_AXIS_LABELS))))


def _padded(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.1 or max(abs(hi) * 0.1, 0.05)
    return lo - pad, hi + pad
