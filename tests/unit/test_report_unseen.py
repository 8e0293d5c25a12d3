"""The unseen categories a report lists (reporting.unseen): counted by hand on hand-built
`unseen` fields of prediction documents, the 10 most frequent values plus `other`, values cut
to 64 characters, a sampled window's estimate of the total, and how the page, the index and
`mlops status` show them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from reporting.unseen import (
    TIMES,
    count_unseen,
    estimate_total,
    markdown_text,
    unseen_line,
    unseen_note,
    value_key,
)
from reporting.window import _window_from

TS = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def _document(i: int, unseen: dict | None) -> dict:
    """A `predictions` document as the window reads it (the projection's fields)."""
    doc = {"_id": f"p{i}", "ts": TS, "model_version": "3", "features": {"plan": "x"}}
    doc |= {"prediction": 0, "probabilities": None, "sample_key": i / 100}
    return doc | ({"unseen": unseen} if unseen is not None else {})


def test_count_unseen_counts_rows_per_feature_and_per_value() -> None:
    rows = [
        {"plan": "Platinum"},
        {"plan": "Platinum", "region": "Mars"},
        None,  # a row scored with every category known
        {"plan": "Prmeium"},
        {"plan": "Platinum"},
        {},
    ]

    counts = count_unseen(rows)

    assert counts == {
        "plan": {"rows": 4, "values": [["Platinum", 3], ["Prmeium", 1]], "other": 0},
        "region": {"rows": 1, "values": [["Mars", 1]], "other": 0},
    }
    assert list(counts) == ["plan", "region"]  # features in name order
    assert count_unseen([None, None]) == {} and count_unseen(None) == {}


def test_count_unseen_keeps_the_ten_most_frequent_values_and_counts_the_rest_as_other() -> None:
    # Value k arrives 20 - k times (k = 0..14): 15 values, 20 + 19 + ... + 6 = 195 rows.
    rows = [{"plan": f"v{k:02d}"} for k in range(15) for _ in range(20 - k)]
    rows += [{"plan": "tie-b"}, {"plan": "tie-a"}]  # 1 row each: below the ten kept

    counts = count_unseen(rows)["plan"]

    assert counts["rows"] == 197
    assert counts["values"] == [[f"v{k:02d}", 20 - k] for k in range(10)]  # most frequent first
    # v10..v14: 10 + 9 + 8 + 7 + 6 = 40 rows, and the two ties.
    assert counts["other"] == 40 + 2
    assert sum(n for _, n in counts["values"]) + counts["other"] == counts["rows"]


def test_count_unseen_breaks_ties_by_value_so_reruns_keep_the_same_values() -> None:
    rows = [{"f": v} for v in ("c", "b", "a", "d")]

    counts = count_unseen(rows, top=2)["f"]

    assert counts == {"rows": 4, "values": [["a", 1], ["b", 1]], "other": 2}


def test_count_unseen_keeps_values_as_str_cut_to_64_characters() -> None:
    long = "P" * 64
    rows = [{"plan": long + "-one"}, {"plan": long + "-two"}, {"plan": 7}, {"plan": "a\x00b"}]

    counts = count_unseen(rows)["plan"]

    # The two long values share their first 64 characters: counted as one.
    assert counts["values"] == [[long, 2], ["7", 1], ["a\ufffdb", 1]]
    assert all(len(v) <= 64 for v, _ in counts["values"])
    assert value_key(None) == "None" and value_key(3.5) == "3.5"


def test_count_unseen_on_a_sample_gives_the_estimated_window_total() -> None:
    # A quarter of the window was read (p = 0.25): 6 sampled rows stand for about 24.
    rows = [{"plan": "Platinum"}] * 5 + [{"plan": "Prmeium"}] + [{"region": "Mars"}]

    counts = count_unseen(rows, sample_fraction=0.25)

    assert counts["plan"] == {
        "rows": 6,
        "values": [["Platinum", 5], ["Prmeium", 1]],
        "other": 0,
        "estimated_rows": 24,
    }
    assert counts["region"]["estimated_rows"] == 4
    assert "estimated_rows" not in count_unseen(rows)["plan"]  # the whole window: exact
    assert estimate_total(3, 0.3) == 10 and estimate_total(3, 1.0) == 3


def test_window_keeps_unseen_aligned_with_the_sample() -> None:
    docs = [_document(0, {"plan": "Platinum"}), _document(1, None), _document(2, {"plan": "Z"})]

    window = _window_from(docs, TS, TS, total=12, p=0.25, unkeyed=0)

    assert window.unseen is not None and len(window.unseen) == window.sample_rows == 3
    assert window.unseen.tolist() == [{"plan": "Platinum"}, None, {"plan": "Z"}]
    assert window.ids.tolist() == ["p0", "p1", "p2"]
    empty = _window_from([], TS, TS, total=0, p=1.0, unkeyed=0)
    assert empty.unseen is not None and len(empty.unseen) == 0


def test_unseen_note_lists_values_and_counts_and_says_when_they_are_of_the_sample() -> None:
    rows = [{"plan": "Platinum"}] * 120 + [{"plan": "Prmeium"}] * 3 + [{"region": "Mars"}]

    whole = unseen_note(count_unseen(rows), 124, 124, 1.0)
    sampled = unseen_note(count_unseen(rows, 0.5), 500, 1000, 0.5)

    assert whole == (
        "**Unseen categories** scored as missing (`MLOPS_UNSEEN_CATEGORY=missing`): "
        f"plan: 'Platinum' {TIMES} 120, 'Prmeium' {TIMES} 3; region: 'Mars' {TIMES} 1."
    )
    plan = f"plan: 'Platinum' {TIMES} 120, 'Prmeium' {TIMES} 3 (about 246 rows of the window)"
    assert plan in sampled
    assert "Counted on the sample (500 of the window's 1,000 rows, p = 0.5000)" in sampled
    assert unseen_note({}, 10, 10, 1.0) is None


def test_unseen_note_shows_other_values_and_escapes_what_clients_sent() -> None:
    rows = [{"plan": f"v{k:02d}"} for k in range(12)] + [{"plan": "</script>*x*\t"}]

    note = unseen_note(count_unseen(rows), 13, 13, 1.0)

    assert note is not None and note.endswith(f", other values {TIMES} 3.")
    # Shown literally: markdown renders `\\u0009` as the text \u0009, so the tab is visible.
    assert f"'\\<\\/script\\>\\*x\\*\\\\u0009' {TIMES} 1" in note
    # Embedded in the page with json.dumps, the value can no longer close its <script>.
    assert "</script" not in json.dumps(note)
    assert markdown_text("card_category") == "card\\_category"


def test_unseen_line_shows_each_feature_with_its_top_values() -> None:
    rows = [{"plan": "Platinum"}] * 4 + [{"plan": v} for v in "abc"] + [{"region": "Mars"}]

    line = unseen_line(count_unseen(rows))

    assert line == (
        "2 feature(s) scored as missing: "
        f"plan 7 rows ('Platinum' {TIMES} 4, 'a' {TIMES} 1, 'b' {TIMES} 1, …); "
        f"region 1 row ('Mars' {TIMES} 1)"
    )
    assert unseen_line({}) is None and unseen_line(None) is None


def test_index_shows_the_number_of_features_with_unseen_categories() -> None:
    from reporting.index import render_index

    base = {"window_end": TS, "model_version": "3", "rows": 10, "drift_share": 0.1}
    with_unseen = base | {"unseen_categories": count_unseen([{"plan": "P", "region": "M"}])}
    older = base | {"window_end": TS.replace(hour=9)}  # a summary from before the field

    page = render_index([with_unseen, older], threshold=0.3)

    assert "Unseen categories</th>" in page
    assert '<span title="plan, region">2 features</span>' in page
    assert page.count("<tr><td>") == 2


def test_frame_of_the_window_is_unchanged_by_unseen() -> None:
    docs = [_document(0, {"plan": "Platinum"}), _document(1, None)]

    window = _window_from(docs, TS, TS, total=2, p=1.0, unkeyed=0)

    assert "unseen" not in window.frame.columns
    assert isinstance(window.frame, pd.DataFrame) and isinstance(window.unseen, np.ndarray)


def test_status_shows_one_unseen_line_for_the_last_report_when_there_are_any() -> None:
    from lifecycle.core.settings import Settings
    from ops.status import Status, render

    report = {"window_end": TS, "model_version": "3", "rows": 10, "drift_share": 0.1}
    unseen = count_unseen([{"plan": "Platinum"}, {"plan": "Prmeium"}])
    settings = Settings(mlflow_tracking_uri="sqlite:///unused.db")

    lines = render(Status(last_report=report | {"unseen_categories": unseen}), settings)
    without = render(Status(last_report=report | {"unseen_categories": {}}), settings)

    shown = [line for line in lines if line.startswith("  unseen")]
    assert shown == [
        "  unseen      1 feature(s) scored as missing: "
        f"plan 2 rows ('Platinum' {TIMES} 1, 'Prmeium' {TIMES} 1)"
    ]
    assert not [line for line in without if line.startswith("  unseen")]
