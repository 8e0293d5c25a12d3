"""The index page: every report newest first, trend figures computed as documented, safe HTML,
and charts that are inline SVG with nothing fetched."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reporting.builder import report_files
from reporting.charts import COLOR
from reporting.files import write_atomic
from reporting.index import (
    daily_metric,
    load_summaries,
    render_index,
    version_metric,
    weekly_metric,
    write_index,
)

MONDAY = datetime(2026, 3, 2, 0, tzinfo=UTC)  # ISO week 2026-W10 starts here


def _summary(ts: datetime, live: float | None, labelled: int, version: str = "1", **extra):
    files = report_files(Path("/reports"), version, ts)
    return {
        "model_version": version,
        "window_end": ts,
        "rows": 1000,
        "labelled_rows": labelled,
        "drift_share": 0.1,
        "drift_threshold": 0.3,
        "drifted_columns": [],
        "primary_metric": "accuracy",
        "live_metric": live,
        "relative_html": files.relative_html,
        **extra,
    }


def test_daily_metric_weights_each_report_by_its_labelled_rows() -> None:
    summaries = [
        _summary(MONDAY + timedelta(hours=3), 0.90, 100),
        _summary(MONDAY + timedelta(hours=6), 0.60, 300),
        _summary(MONDAY + timedelta(days=1, hours=3), 0.70, 50),
        _summary(MONDAY + timedelta(days=1, hours=6), None, 0),  # no live metric yet
    ]
    assert daily_metric(summaries) == [
        ("2026-03-02", pytest.approx((0.90 * 100 + 0.60 * 300) / 400), 400),
        ("2026-03-03", pytest.approx(0.70), 50),
    ]


def test_weekly_metric_groups_by_iso_week() -> None:
    summaries = [
        _summary(MONDAY - timedelta(hours=1), 0.50, 10),  # Sunday: previous ISO week
        _summary(MONDAY + timedelta(hours=1), 0.80, 30),
        _summary(MONDAY + timedelta(days=6, hours=23), 0.90, 10),  # Sunday of the same week
    ]
    assert weekly_metric(summaries) == [
        ("2026-W09", pytest.approx(0.50), 10),
        ("2026-W10", pytest.approx((0.80 * 30 + 0.90 * 10) / 40), 40),
    ]


def _experiment(champion: float, challenger: float | None, p: float, action: str = "none"):
    live = {"1": {"version": "1", "rows": 300, "value": champion, "low": 0.5, "high": 0.7}}
    if challenger is not None:
        live["2"] = {"version": "2", "rows": 300, "value": challenger, "low": 0.7, "high": 0.9}
    paired = {
        "champion": "1", "challenger": "2", "pairs": 300, "test": "mcnemar-exact",
        "p_value": p, "champion_metric": champion, "challenger_metric": challenger,
        "champion_wins": 20, "challenger_wins": 80,
    }  # fmt: skip
    reason = f"promoted v2: significantly better, p={p:.4g}"
    decision = {"action": action, "version": "2" if action != "none" else None,
                "acted": action != "none", "reason": reason}  # fmt: skip
    return {"champion": "1", "metric": "accuracy", "live_versions": live, "paired": paired,
            "decisions": [decision]}  # fmt: skip


def test_version_metric_gives_each_version_its_own_line() -> None:
    summaries = [
        _summary(MONDAY, 0.80, 100),  # before the shadow: one version
        _summary(MONDAY + timedelta(hours=3), 0.62, 300, experiment=_experiment(0.62, 0.79, 0.2)),
        _summary(MONDAY + timedelta(hours=6), 0.60, 300, experiment=_experiment(0.60, 0.81, 1e-5)),
        _summary(MONDAY + timedelta(hours=9), None, 0),  # no labels yet: no point
    ]
    series = version_metric(summaries)
    assert list(series) == ["v1", "v2"]
    assert [v for _, v in series["v1"]] == [0.80, 0.62, 0.60]
    assert series["v2"] == [
        (MONDAY + timedelta(hours=3), 0.79),
        (MONDAY + timedelta(hours=6), 0.81),
    ]


def test_render_index_shows_the_paired_p_value_decision_and_version_lines() -> None:
    summaries = [
        _summary(MONDAY + timedelta(hours=6), 0.60, 300,
                 experiment=_experiment(0.60, 0.81, 1.2e-5, "promote")),
        _summary(MONDAY + timedelta(hours=3), 0.62, 300, experiment=_experiment(0.62, 0.79, 0.2)),
    ]  # fmt: skip
    page = render_index(summaries)
    rows = page.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]
    assert "v2 vs v1: p 1.2e-05" in rows[0] and "promoted v2</span>" in rows[0]
    assert "v2 vs v1: p 0.2" in rows[1] and "promoted" not in rows[1]
    chart = page.split('aria-label="Live accuracy per version"')[1].split("</svg>")[0]
    assert ">v1<" in chart and ">v2<" in chart  # the legend, as text


def test_render_index_lists_reports_newest_first_with_six_charts() -> None:
    summaries = [
        _summary(MONDAY + timedelta(hours=3 * i), 0.8, 100, version=str(1 + i // 4))
        for i in range(8)
    ]
    summaries.sort(key=lambda s: s["window_end"], reverse=True)
    page = render_index(summaries, [{"version": "2", "metric": "accuracy", "value": 0.81}])

    links = re.findall(r'<a href="([^"]+)"', page)
    assert links == [s["relative_html"] for s in summaries]
    assert links[0] == "2/20260302T210000Z.html"
    assert page.count("<svg") == 6
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    # The charts' only references are to their own definitions (markers, clip paths)...
    assert all(ref.startswith("#") for ref in re.findall(r'xlink:href="([^"]+)"', page))
    assert all(ref.startswith("#") for ref in re.findall(r"url\(([^)]+)\)", page))
    # ... whose ids stay unique across the six inline SVGs.
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids))


def test_render_index_without_reports_shows_placeholders() -> None:
    page = render_index([])
    assert page.count("<svg") == 6 and page.count("no data yet") == 6
    assert "No reports yet" in page


def test_render_index_escapes_text_from_the_log() -> None:
    evil = _summary(MONDAY, 0.8, 10, drifted_columns=["<script>alert(1)</script>"])
    page = render_index([evil])
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_render_index_charts_keep_text_from_the_registry_literal() -> None:
    champions = [{"version": "<b>7</b>", "metric": "$accuracy$", "value": 0.8}]
    page = render_index([_summary(MONDAY, 0.8, 10)], champions)
    assert "<b>7</b>" not in page and "v&lt;b&gt;7&lt;/b&gt;" in page
    assert "$accuracy$" in page  # a "$" is a character, not matplotlib mathtext


def test_render_index_many_reports_keeps_every_trend_point() -> None:
    summaries = [_summary(MONDAY - timedelta(hours=3 * i), 0.8, 10) for i in range(400)]
    page = render_index(summaries)
    assert page.count("<svg") == 6 and page.count("<tr><td>") == 400
    daily = page.split('aria-label="Live accuracy per day"')[1].split("</svg>")[0]
    days = {s["window_end"].date() for s in summaries}
    assert len(days) > 16  # past the labelled bars: these are drawn as one collection
    assert daily.count(f"fill: {COLOR}") == len(days)


def test_write_index_reads_summaries_on_disk_and_skips_junk(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    for i, ts in enumerate((MONDAY, MONDAY + timedelta(hours=3))):
        files = report_files(root, "1", ts)
        data = _summary(ts, 0.8, 10 + i)
        data["window_end"] = ts.isoformat()
        write_atomic(files.json, json.dumps(data))
    write_atomic(root / "1" / "broken.json", "{not json")
    hidden = _summary(MONDAY, 0.1, 1)
    hidden["window_end"] = MONDAY.isoformat()
    write_atomic(root / ".hidden" / "x.json", json.dumps(hidden))

    assert [s["labelled_rows"] for s in load_summaries(root)] == [11, 10]
    page = write_index(root).read_text()
    assert page.count('href="1/') == 2 and "Reports (2)" in page
