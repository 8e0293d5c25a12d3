"""`mlops status` lines for a report's label-free estimate (ops.status.estimate_lines)."""

from __future__ import annotations

from ops.status import estimate_lines


def test_estimate_lines_show_the_estimate_and_a_suspected_concept_drift() -> None:
    report = {
        "estimated": {"metric": "accuracy", "value": 0.74, "low": 0.72, "high": 0.77, "rows": 9},
        "concept_drift": {"metric": "accuracy", "realized": 0.5, "rows": 40, "suspected": True},
    }
    lines = estimate_lines(report)
    assert lines[0] == "  estimated   accuracy=0.7400 [0.7200, 0.7700] on 9 rows, no labels needed"
    assert lines[1].endswith("accuracy=0.5000 on 40 labelled rows: CONCEPT DRIFT SUSPECTED")


def test_estimate_lines_say_why_there_is_no_estimate() -> None:
    report = {"estimated": None, "estimate_note": "estimate: classification only"}
    assert estimate_lines(report) == ["  estimated   estimate: classification only"]
    assert estimate_lines({}) == []
