"""The reports index, `<reports_dir>/index.html`: every report newest first, and trend charts
(drift share, live metric per day, weekly average of the live metric, champions' test metric).

It is built from the JSON summaries on disk, so it lists exactly what nginx can serve. The page
is one static file: inline CSS and SVG, no scripts, nothing fetched.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from reporting.builder import write_atomic
from reporting.charts import bar_chart, time_chart

log = logging.getLogger(__name__)
INDEX_FILE = "index.html"


def load_summaries(reports_dir: Path) -> list[dict[str, Any]]:
    """Every report summary under `reports_dir` (`<version>/<end>.json`), newest first."""
    out = []
    for path in Path(reports_dir).glob("*/*.json"):
        if path.name.startswith(".") or path.parent.name.startswith("."):
            continue
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
            summary["window_end"] = _parse_time(summary["window_end"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("skipping unreadable report summary %s: %s", path, exc)
            continue
        summary.setdefault("relative_html", f"{path.parent.name}/{path.stem}.html")
        out.append(summary)
    out.sort(key=lambda s: s["window_end"], reverse=True)
    return out


def daily_metric(summaries: Sequence[dict[str, Any]]) -> list[tuple[str, float, int]]:
    """(UTC day, live metric averaged over that day's labelled rows, labelled rows), by day."""
    return _grouped(summaries, lambda ts: ts.strftime("%Y-%m-%d"))


def weekly_metric(summaries: Sequence[dict[str, Any]]) -> list[tuple[str, float, int]]:
    """(ISO week, live metric averaged over that week's labelled rows, labelled rows)."""

    def week(ts: datetime) -> str:
        year, number, _ = ts.isocalendar()
        return f"{year}-W{number:02d}"

    return _grouped(summaries, week)


def render_index(
    summaries: Sequence[dict[str, Any]],
    champions: Sequence[dict[str, Any]] = (),
    threshold: float | None = None,
    generated_at: datetime | None = None,
) -> str:
    """The whole page as one HTML string."""
    generated_at = generated_at or datetime.now(UTC)
    metric = _metric_name(summaries)
    with_metric = [s for s in summaries if s.get("primary_metric", metric) == metric]
    threshold = threshold if threshold is not None else _threshold(summaries)

    drift = [
        (s["window_end"], float(s["drift_share"])) for s in summaries if _has(s, "drift_share")
    ]
    daily = daily_metric(with_metric)
    weekly = weekly_metric(with_metric)
    charts = [
        time_chart(
            drift, "Drift share per report", "share of drifted columns", (0.0, 1.0), threshold
        ),
        bar_chart(
            [d for d, _, _ in daily],
            [v for _, v, _ in daily],
            f"Live {metric} per day",
            metric,
            notes=[f"{n:,} labelled rows" for _, _, n in daily],
        ),
        bar_chart(
            [w for w, _, _ in weekly],
            [v for _, v, _ in weekly],
            f"Weekly average {metric}",
            metric,
            notes=[f"{n:,} labelled rows" for _, _, n in weekly],
        ),
        bar_chart(
            [f"v{c['version']}" for c in champions],
            [float(c["value"]) for c in champions],
            "Test metric of each champion version",
            champions[0]["metric"] if champions else metric,
            notes=[f"trained {c.get('trained_at') or '?'}" for c in champions],
        ),
    ]
    rows = "\n".join(_row(s) for s in summaries) or (
        '<tr><td colspan="8" class="empty">No reports yet: the first one appears after a window '
        "with enough predictions.</td></tr>"
    )
    figures = "\n".join(f'<figure class="card">{svg}</figure>' for svg in charts)
    latest = summaries[0] if summaries else None
    headline = (
        f"Latest: version {escape(str(latest['model_version']))}, window ending "
        f"{_fmt_time(latest['window_end'])}, drift share {latest['drift_share']:.2f}."
        if latest
        else "No reports yet."
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Lifecycle reports</title>
<style>
  body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
         background: #f3f4f6; color: #111827; }}
  header {{ background: #111827; color: #f9fafb; padding: 18px 28px; }}
  header h1 {{ margin: 0 0 4px; font-size: 22px; }}
  header p {{ margin: 0; color: #d1d5db; font-size: 14px; }}
  main {{ padding: 20px 28px; }}
  .charts {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr));
            gap: 16px; }}
  .card {{ background: #fff; border-radius: 8px; box-shadow: 0 1px 3px rgba(0,0,0,.12);
          margin: 0; padding: 8px; }}
  .card svg {{ width: 100%; height: auto; display: block; }}
  h2 {{ font-size: 17px; margin: 26px 0 10px; }}
  table {{ border-collapse: collapse; width: 100%; background: #fff; border-radius: 8px;
          overflow: hidden; box-shadow: 0 1px 3px rgba(0,0,0,.12); font-size: 14px; }}
  th, td {{ padding: 8px 12px; text-align: left; border-bottom: 1px solid #e5e7eb; }}
  th {{ background: #f9fafb; font-weight: 600; }}
  td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
  .drift {{ color: #b91c1c; font-weight: 600; }}
  .tag {{ font-size: 11px; background: #fef3c7; color: #92400e; border-radius: 4px;
         padding: 1px 5px; margin-left: 4px; }}
  .empty {{ color: #6b7280; text-align: center; }}
  footer {{ color: #6b7280; font-size: 12px; padding: 0 28px 24px; }}
</style>
</head>
<body>
<header>
  <h1>Lifecycle reports</h1>
  <p>{headline} Drift threshold {threshold:.2f}.</p>
</header>
<main>
<section class="charts">
{figures}
</section>
<h2>Reports ({len(summaries)})</h2>
<table>
<thead><tr><th>Window end (UTC)</th><th>Version</th><th class="num">Rows</th>
<th class="num">Labelled</th><th class="num">Drift share</th><th>Drifted columns</th>
<th class="num">Live metric</th><th>Report</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</main>
<footer>Generated {_fmt_time(generated_at)} UTC. Each report compares its window's predictions
with the serving version's training reference (Evidently).</footer>
</body>
</html>
"""


def write_index(
    reports_dir: Path,
    champions: Sequence[dict[str, Any]] = (),
    threshold: float | None = None,
    summaries: Sequence[dict[str, Any]] | None = None,
) -> Path:
    """Rebuild `<reports_dir>/index.html` from the summaries on disk (or those given)."""
    path = Path(reports_dir) / INDEX_FILE
    if summaries is None:
        summaries = load_summaries(reports_dir)
    write_atomic(path, render_index(summaries, champions, threshold))
    return path


def _row(summary: dict[str, Any]) -> str:
    share = float(summary.get("drift_share") or 0.0)
    drifted = summary.get("drift_detected", False)
    columns = summary.get("drifted_columns") or []
    live = summary.get("live_metric")
    live_text = (
        f"{escape(str(summary.get('primary_metric', '')))} {live:.4f}" if live is not None else "-"
    )
    sampled = '<span class="tag">sampled</span>' if summary.get("sampled") else ""
    link = escape(str(summary["relative_html"]), quote=True)
    return (
        f"<tr><td>{_fmt_time(summary['window_end'])}</td>"
        f"<td>v{escape(str(summary.get('model_version', '?')))}</td>"
        f'<td class="num">{int(summary.get("rows", 0)):,}{sampled}</td>'
        f'<td class="num">{int(summary.get("labelled_rows", 0)):,}</td>'
        f'<td class="num{" drift" if drifted else ""}">{share:.2f}</td>'
        f"<td>{escape(', '.join(columns)) or '-'}</td>"
        f'<td class="num">{live_text}</td>'
        f'<td><a href="{link}">open</a></td></tr>'
    )


def _grouped(summaries: Sequence[dict[str, Any]], key: Any) -> list[tuple[str, float, int]]:
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


def _metric_name(summaries: Sequence[dict[str, Any]]) -> str:
    for s in summaries:
        if s.get("primary_metric"):
            return str(s["primary_metric"])
    return "accuracy"


def _threshold(summaries: Sequence[dict[str, Any]]) -> float:
    for s in summaries:
        if s.get("drift_threshold") is not None:
            return float(s["drift_threshold"])
    return 0.3


def _has(summary: dict[str, Any], name: str) -> bool:
    return summary.get(name) is not None


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        ts = value
    else:
        ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _fmt_time(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
