"""Evidently reports on in-memory frames (no servers): per-column drift verdicts, the live metric,
deterministic sampling, file naming and the nginx template."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lifecycle.data.synthetic import DRIFTED_COLUMNS, UNDRIFTED_COLUMNS, generate_churn
from lifecycle.model.predictor import FeatureSpec
from reporting.builder import insufficient_message, report_files
from reporting.drift import build_drift_report, label_keys, live_metrics
from reporting.nginx import render_config
from reporting.window import sample_positions


@pytest.fixture(scope="module")
def reference() -> tuple[pd.DataFrame, FeatureSpec]:
    frame = generate_churn(1500, seed=1)
    spec = FeatureSpec.infer(frame, "churn", "binary")
    return frame.assign(prediction=frame["churn"]), spec


def test_build_drift_report_flags_exactly_the_shifted_columns(reference) -> None:
    ref, spec = reference
    current = generate_churn(1500, seed=2, drift=1.0)
    current["prediction"] = current["churn"]
    labelled = current.head(200)

    content = build_drift_report(
        current.drop(columns=["churn"]), ref, spec, labelled, ["note"], 0.3
    )

    assert set(content.drifted_columns) == set(DRIFTED_COLUMNS)
    assert content.drift_share == pytest.approx(len(DRIFTED_COLUMNS) / len(spec.features))
    assert all(not content.column_drift[c]["drifted"] for c in UNDRIFTED_COLUMNS)
    assert content.prediction_drift is not None and "score" in content.prediction_drift
    assert content.quality["Accuracy"] == pytest.approx(1.0)  # prediction == label here
    assert "Model quality on 200 labelled rows" in content.html
    assert "<script" in content.html and "https://" not in content.html.split("<body")[0]


def test_build_drift_report_undrifted_without_labels(reference) -> None:
    ref, spec = reference
    current = generate_churn(1500, seed=3, drift=0.0)
    current["prediction"] = current["churn"]

    content = build_drift_report(current.drop(columns=["churn"]), ref, spec)

    assert content.drifted_columns == [] and content.drift_share == 0.0
    assert content.quality == {} and "Model quality" not in content.html


def test_live_metrics_match_hand_count_across_label_types() -> None:
    spec = FeatureSpec.infer(generate_churn(50, seed=4), "churn", "binary")
    predicted = [1, 0, 1, 1, 0, 0, 1, 0]
    actual = ["1", 0.0, 0, True, "0", 1, 1.0, np.int64(0)]  # how labels arrive as JSON/BSON
    hits = sum(int(float(a)) == p for a, p in zip(actual, predicted, strict=True))
    assert live_metrics(spec, actual, predicted)["accuracy"] == pytest.approx(hits / 8)


def test_label_keys_unify_numbers_strings_and_missing() -> None:
    assert list(label_keys([1, 1.0, "1", True, None, float("nan"), "yes"])) == [
        "1",
        "1",
        "1",
        "1",
        None,
        None,
        "yes",
    ]


def test_sample_positions_deterministic_and_order_free() -> None:
    ids = np.asarray([f"id-{i}" for i in range(5000)], dtype=object)
    assert sample_positions(ids, 5000) is None
    keep = sample_positions(ids, 1000)
    assert len(keep) == 1000 and list(keep) == sorted(keep)
    shuffled = ids[np.random.default_rng(0).permutation(len(ids))]
    assert set(shuffled[sample_positions(shuffled, 1000)]) == set(ids[keep])


def test_report_files_named_by_version_and_utc_window_end(tmp_path: Path) -> None:
    end = datetime(2026, 1, 5, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    files = report_files(tmp_path, "7", end)
    assert files.html == tmp_path / "7" / "20260105T123000Z.html"
    assert files.json == tmp_path / "7" / "20260105T123000Z.json"
    assert files.url("http://h:8088/") == "http://h:8088/7/20260105T123000Z.html"
    assert report_files(tmp_path, "../../etc", end.astimezone(UTC)).html.parent == (
        tmp_path / "______etc"
    )


def test_insufficient_message_wording() -> None:
    assert insufficient_message(3) == "insufficient data: 3 rows in window"


def test_render_config_fills_placeholders_and_keeps_nginx_variables(tmp_path: Path) -> None:
    text = render_config(tmp_path / "reports", 18088, "127.0.0.1", tmp_path / "ngx")
    assert f"root {tmp_path / 'reports'};" in text
    assert "listen 127.0.0.1:18088;" in text
    assert "autoindex off;" in text and "gzip on;" in text
    assert "$uri" in text and "$document_root" in text  # nginx's own variables untouched
    assert "${" not in text
    with pytest.raises(ValueError, match="reports dir"):
        render_config(tmp_path / "my reports", 18088)


def test_nginx_command_help_names_its_options() -> None:
    from typer.testing import CliRunner

    from reporting.nginx.__main__ import app

    outcome = CliRunner().invoke(app, ["--help"])
    assert outcome.exit_code == 0, outcome.output
    assert all(option in outcome.output for option in ("--port", "--host", "--check"))
