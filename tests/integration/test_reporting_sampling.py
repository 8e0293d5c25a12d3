"""Reports at volume against the real MongoDB-wire server (nx-27017): the sampled read by
`sample_key`, live metrics over every label with their interval, old documents without a key,
and (in process) drift on a sampled 200,000-row window against the full window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from lifecycle.core.settings import Settings
from lifecycle.data.synthetic import generate_churn
from lifecycle.stores.documents import SAMPLE_KEY
from lifecycle.stores.prediction_store import PredictionStore
from reporting.window import read_window
from tests.fixtures.reporting import SeededWindow, TrainedModel, seed_window

pytestmark = pytest.mark.integration

WINDOW = timedelta(hours=3)
END = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
CAP = 1000


def _store(settings: Settings) -> PredictionStore:
    # A 50 s socket bound: one 5,000-document insert_many took over 10 s on nx-27017 with the
    # 2-core machine at load average 16.
    return PredictionStore(settings.mongo_uri, settings.mongo_db, timeout_ms=10_000)


@pytest.fixture
def seeded(reporting_model: TrainedModel, report_env: Settings) -> SeededWindow:
    """4,000 predictions in the window, 30 % labelled, and 200 outside it on either side."""
    predictor = reporting_model.predictor()
    store = _store(report_env)

    def seed(rows: int, end: datetime, seed: int, share: float) -> SeededWindow:
        return seed_window(
            store,
            generate_churn(rows, seed=seed, drift=0.5),
            lambda frame: predictor.predict_frame(frame)[0],
            end,
            WINDOW,
            reporting_model.version,
            reporting_model.model_name,
            share,
            seed=seed,
        )

    window = seed(4000, END, 1, 0.3)
    seed(200, END - WINDOW, 2, 1.0)
    seed(200, END + WINDOW, 3, 1.0)
    store.close()
    return window


def test_read_window_sampled_returns_the_cap_from_the_window_and_again(
    seeded: SeededWindow, report_env: Settings
) -> None:
    store = _store(report_env)

    first = read_window(store, END - WINDOW, END, max_rows=CAP, max_labelled=100_000)
    again = read_window(store, END - WINDOW, END, max_rows=CAP, max_labelled=100_000)

    assert first.rows == 4000  # the true count, not the sample's
    assert first.sample_fraction == pytest.approx(CAP / 4000)
    assert CAP * 0.9 <= first.sample_rows <= CAP * 1.1
    assert set(first.ids) <= set(seeded.ids)  # nothing from outside the window
    assert all(END - WINDOW <= ts < END for ts in first.ts)
    assert sorted(first.ids) == sorted(again.ids)


def test_read_window_live_accuracy_over_all_labels_equals_hand_count(
    seeded: SeededWindow, report_env: Settings
) -> None:
    from reporting.live import live_metrics_with_intervals
    from reporting.reference import cached_reference

    store = _store(report_env)
    window = read_window(store, END - WINDOW, END, max_rows=CAP, max_labelled=100_000)
    spec = cached_reference(str(window.serving_version)).spec

    metrics, intervals = live_metrics_with_intervals(
        spec, window.live.actual, window.live.predicted
    )

    assert window.live is not None and not window.live.sampled
    assert window.labelled_rows == len(seeded.labels)  # every label, not the sample's
    assert metrics["accuracy"] == pytest.approx(seeded.hand_accuracy(), abs=1e-12)
    low, high = intervals["accuracy"]
    assert low < metrics["accuracy"] < high
    # 1,200 labels: a 95 % interval of about ±2 points, not a degenerate one.
    assert 0.01 < high - low < 0.08


def test_live_comparison_past_the_label_cap_uses_the_samples_labelled_rows_only(
    seeded: SeededWindow, report_env: Settings
) -> None:
    """With more labels than MLOPS_REPORT_MAX_LABELLED the comparison, like the live metric,
    covers the sample's labelled rows, not every label (its cost follows the sample)."""
    from reporting.comparison import compare_pairs

    store = _store(report_env)
    window = read_window(store, END - WINDOW, END, max_rows=CAP, max_labelled=100)
    full = read_window(store, END - WINDOW, END, max_rows=CAP, max_labelled=100_000)
    assert window.live is not None and window.live.sampled
    ids = window.live.ids.tolist()
    sample_labels = {i: seeded.labels[i] for i in window.ids if i in seeded.labels}
    assert sorted(ids) == sorted(sample_labels) and len(ids) < len(seeded.labels)

    version = str(window.serving_version)
    on_sample = compare_pairs(window.live, version, "binary", "accuracy")
    everything = compare_pairs(full.live, version, "binary", "accuracy")

    assert on_sample["sampled"] and not everything["sampled"]
    assert on_sample["live_versions"][version]["rows"] == len(sample_labels)
    assert everything["live_versions"][version]["rows"] == len(seeded.labels)
    by_id = dict(zip(seeded.ids, seeded.predictions, strict=True))
    hits = sum(by_id[i] == y for i, y in sample_labels.items())
    assert on_sample["live_versions"][version]["value"] == pytest.approx(hits / len(ids))


def test_build_reports_old_documents_without_sample_key_still_report(
    reporting_model: TrainedModel,
    report_env: Settings,
    reports_prefect: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.report import build_reports
    from lifecycle.core.settings import get_settings

    monkeypatch.setenv("MLOPS_REPORT_MAX_ROWS", str(CAP))
    get_settings.cache_clear()
    predictor = reporting_model.predictor()
    store = _store(report_env)
    for rows, end, seed, keyed in ((1500, END - WINDOW / 2, 4, False), (1500, END, 5, True)):
        seeded = seed_window(
            store,
            generate_churn(rows, seed=seed),
            lambda frame: predictor.predict_frame(frame)[0],
            end,
            WINDOW / 2,
            reporting_model.version,
            reporting_model.model_name,
            0.3,
            seed=seed,
        )
        if not keyed:  # logged before sample_key existed
            store.predictions.update_many(
                {"_id": {"$in": seeded.ids}}, {"$unset": {SAMPLE_KEY: ""}}
            )

    result = build_reports(window="3h", end=END)

    assert result["status"] == "written"
    assert result["rows"] == 3000 and result["sampled"] is True
    doc = store.latest_report(reporting_model.model_name)
    assert doc["unkeyed_rows"] == 1500
    # Old rows are kept at the same rate p as keyed ones: about a third of 3,000 in all.
    assert CAP * 0.8 <= doc["rows_compared"] <= CAP * 1.2
    assert doc["labelled_rows"] == store.feedback.count_documents({})  # all labels joined


def test_drift_on_sampled_200k_window_flags_the_full_windows_columns(
    reporting_model: TrainedModel,
) -> None:
    """In process (the sampling rule applied to a frame): seeding 200,000 documents through
    nx-27017 would take minutes, and what is under test is the statistics of the sample."""
    from reporting.drift import build_drift_report
    from reporting.reference import load_version_reference
    from reporting.window import sample_fraction

    reference = load_version_reference(reporting_model.version, reporting_model.settings)
    window = generate_churn(200_000, seed=17, drift=1.0)
    window["prediction"] = window["churn"]
    current = window.drop(columns=["churn"])
    keys = np.random.default_rng(3).random(len(current))  # as drawn at write time
    sample = current[keys < sample_fraction(len(current), 50_000)]

    full = build_drift_report(current, reference.frame, reference.spec, drift_threshold=0.3)
    sampled = build_drift_report(sample, reference.frame, reference.spec, drift_threshold=0.3)

    assert 45_000 <= len(sample) <= 55_000
    assert sampled.drifted_columns == full.drifted_columns
    assert sampled.drift_share == pytest.approx(full.drift_share)
