"""The reports index, `<reports_dir>/index.html`: every report newest first with its live
experiment (paired p-value, decision), and trend charts (drift share, live metric per day,
weekly average of the live metric, each version's live metric, champions' test metric).

It is built from the JSON summaries on disk, so it lists exactly what nginx can serve. The page
is one static file rendered from `templates/index.html.j2` (autoescaped): inline CSS and SVG, no
scripts, nothing fetched.
"""

from __future__ import annotations

import functools
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from lifecycle.core.times import TimeValueError, as_utc, parse_time, utcnow
from lifecycle.stores.documents import ReportSummary
from reporting.charts import bar_chart, lines_chart, time_chart
from reporting.files import write_atomic

log = logging.getLogger(__name__)
INDEX_FILE = "index.html"
TEMPLATE = "index.html.j2"
# Times the JSON beside each report holds as ISO strings; the summary type holds datetimes.
TIME_FIELDS = ("window_start", "window_end", "created_at")
# Backtests' JSON (flows/backtest.py): a dot folder, so load_summaries never reads them as reports.
BACKTESTS_DIR = ".backtests"
BACKTESTS_SHOWN = 20

Champion = Mapping[str, Any]  # reporting.reference.champion_history: version, metric, value...
Trend = list[tuple[str, float, int]]


def load_summaries(reports_dir: Path) -> list[ReportSummary]:
    """Every report summary under `reports_dir` (`<version>/<end>.json`), newest first."""
    out = []
    for path in Path(reports_dir).glob("*/*.json"):
        if path.name.startswith(".") or path.parent.name.startswith("."):
            continue
        summary = _read_summary(path)
        if summary is not None:
            out.append(summary)
    out.sort(key=lambda s: s["window_end"], reverse=True)
    return out


def load_backtests(reports_dir: Path, limit: int = BACKTESTS_SHOWN) -> list[dict[str, Any]]:
    """The newest backtest documents written beside the reports, newest first."""
    out = []
    for path in sorted(Path(reports_dir).glob(f"{BACKTESTS_DIR}/*.json"), reverse=True)[:limit]:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            doc["window_end"] = _json_time(doc["window_end"], "window_end")
        except (OSError, ValueError, KeyError, TypeError, TimeValueError) as exc:
            log.warning("skipping unreadable backtest %s: %s", path, exc)
            continue
        out.append(doc)
    return out


def estimated_vs_realized(
    summaries: Sequence[ReportSummary],
) -> dict[str, list[tuple[datetime, float]]]:
    """`{"estimated <metric>": [(window end, value)], "realized <metric>": [...]}` per report:
    the label-free estimate beside the live metric once labels arrived."""
    series: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for s in summaries:
        est = s.get("estimated")
        if not est:
            continue
        series[f"estimated {est['metric']}"].append((s["window_end"], float(est["value"])))
        realized = (s.get("metrics") or {}).get(est["metric"])
        if realized is not None:
            series[f"realized {est['metric']}"].append((s["window_end"], float(realized)))
    return dict(series)


def daily_metric(summaries: Sequence[ReportSummary]) -> Trend:
    """(UTC day, live metric averaged over that day's labelled rows, labelled rows), by day."""
    return _grouped(summaries, lambda ts: ts.strftime("%Y-%m-%d"))


def weekly_metric(summaries: Sequence[ReportSummary]) -> Trend:
    """(ISO week, live metric averaged over that week's labelled rows, labelled rows)."""

    def week(ts: datetime) -> str:
        year, number, _ = ts.isocalendar()
        return f"{year}-W{number:02d}"

    return _grouped(summaries, week)


def version_metric(summaries: Sequence[ReportSummary]) -> dict[str, list[tuple[datetime, float]]]:
    """`{"v<version>": [(window end, live metric)]}`: each version's live metric per report.

    A report with a live comparison (shadow or canary) gives every version it measured, so a
    challenger's line runs beside the champion's; an older report gives its one version.
    """
    series: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for s in summaries:
        measured = (s.get("experiment") or {}).get("live_versions") or {}
        points = {str(v): m.get("value") for v, m in measured.items()}
        if not points and s.get("live_metric") is not None:
            points = {str(s.get("model_version")): s["live_metric"]}
        for version, value in points.items():
            if value is not None:
                series[f"v{version}"].append((s["window_end"], float(value)))
    return dict(sorted(series.items(), key=lambda kv: _version_key(kv[0])))


def render_index(
    summaries: Sequence[ReportSummary],
    champions: Sequence[Champion] = (),
    threshold: float | None = None,
    generated_at: datetime | None = None,
    backtests: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The whole page as one HTML string; `summaries` newest first."""
    threshold = threshold if threshold is not None else _threshold(summaries)
    return _template().render(
        summaries=summaries,
        backtests=backtests,
        latest=summaries[0] if summaries else None,
        charts=trend_charts(summaries, champions, threshold),
        threshold=threshold,
        generated_at=generated_at or utcnow(),
    )


def trend_charts(
    summaries: Sequence[ReportSummary], champions: Sequence[Champion], threshold: float
) -> list[Any]:
    """The six charts, as SVG marked safe for the template: drift share per report with the
    threshold, live metric per day and per ISO week, each version's live metric per report
    (champion and challengers side by side), the label-free estimate beside the realized
    metric per report, and each champion's test metric."""
    from markupsafe import Markup

    metric = _metric_name(summaries)
    with_metric = [s for s in summaries if s.get("primary_metric", metric) == metric]
    drift = [(s["window_end"], float(s["drift_share"])) for s in summaries if _has_drift(s)]
    charts = [
        time_chart(
            drift, "Drift share per report", "share of drifted columns", (0.0, 1.0), threshold
        ),
        _trend_chart(daily_metric(with_metric), f"Live {metric} per day", metric),
        _trend_chart(weekly_metric(with_metric), f"Weekly average {metric}", metric),
        lines_chart(version_metric(with_metric), f"Live {metric} per version", metric),
        lines_chart(
            estimated_vs_realized(summaries), "Estimated (no labels) and realized", "metric"
        ),
        bar_chart(
            [f"v{c['version']}" for c in champions],
            [float(c["value"]) for c in champions],
            "Test metric of each champion version",
            champions[0]["metric"] if champions else metric,
            notes=[f"trained {c.get('trained_at') or '?'}" for c in champions],
        ),
    ]
    # matplotlib escapes the text it writes; the SVG goes into the page as it is.
    return [Markup(svg) for svg in charts]


def write_index(
    reports_dir: Path,
    champions: Sequence[Champion] = (),
    threshold: float | None = None,
    summaries: Sequence[ReportSummary] | None = None,
) -> Path:
    """Rebuild `<reports_dir>/index.html` from the summaries on disk (or those given)."""
    path = Path(reports_dir) / INDEX_FILE
    if summaries is None:
        summaries = load_summaries(reports_dir)
    backtests = load_backtests(reports_dir)
    write_atomic(path, render_index(summaries, champions, threshold, backtests=backtests))
    return path


@functools.cache
def _template() -> Any:
    """The page template, loaded once per process (on first use, not at import)."""
    from jinja2 import Environment, PackageLoader

    env = Environment(
        loader=PackageLoader("reporting", "templates"),
        autoescape=True,  # report fields come from the prediction log: never trusted as HTML
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["utc"] = _fmt_time
    env.filters["thousands"] = lambda n: f"{int(n):,}"
    return env.get_template(TEMPLATE)


def _read_summary(path: Path) -> ReportSummary | None:
    """One JSON summary with its times as datetimes; None (and a warning) when unreadable."""
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        for name in TIME_FIELDS:
            if name == "window_end" or summary.get(name) is not None:
                summary[name] = _json_time(summary[name], name)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, TimeValueError) as exc:
        log.warning("skipping unreadable report summary %s: %s", path, exc)
        return None
    summary.setdefault("relative_html", f"{path.parent.name}/{path.stem}.html")
    return summary


def _json_time(value: Any, name: str) -> datetime:
    if not isinstance(value, str):  # parse_time would read None as "now"
        raise TypeError(f"{name}: expected an ISO 8601 string, got {value!r}")
    return parse_time(value, name)


def _trend_chart(trend: Trend, title: str, metric: str) -> str:
    return bar_chart(
        [label for label, _, _ in trend],
        [value for _, value, _ in trend],
        title,
        metric,
        notes=[f"{rows:,} labelled rows" for _, _, rows in trend],
    )


def _grouped(summaries: Sequence[ReportSummary], key: Callable[[datetime], str]) -> Trend:
    """Labelled-row-weighted mean of the live metric per group, groups in order."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for s in summaries:
        live, weight = s.get("live_metric"), int(s.get("labelled_rows") or 0)
        if live is None or weight <= 0:
            continue
        bucket = totals[key(s["window_end"])]
        bucket[0] += float(live) * weight
        bucket[1] += weight
    return [(k, v[0] / v[1], int(v[1])) for k, v in sorted(totals.items())]


def _version_key(label: str) -> tuple[int, str]:
    digits = label.removeprefix("v")
    return (int(digits), "") if digits.isdigit() else (1 << 62, digits)


def _metric_name(summaries: Sequence[ReportSummary]) -> str:
    for s in summaries:
        if s.get("primary_metric"):
            return str(s["primary_metric"])
    return "accuracy"


def _threshold(summaries: Sequence[ReportSummary]) -> float:
    for s in summaries:
        if s.get("drift_threshold") is not None:
            return float(s["drift_threshold"])
    return 0.3


def _has_drift(summary: ReportSummary) -> bool:
    return summary.get("drift_share") is not None


def _fmt_time(ts: datetime) -> str:
    return as_utc(ts).strftime("%Y-%m-%d %H:%M")
