"""The label-free estimate in the `build-reports` flow, on real servers: a model trained by the real
training flow (sqlite MLflow store, its calibration stored with the version), the prediction log
in nx-27017, the report flow in process under the Prefect test server.

Five windows of covariate drift 0 to 1 with no label at all: each window's estimated accuracy is
within ±0.03 of the truth the test kept, and the truth is inside the interval in at least 4 of 5.
Then a window of concept drift gets its labels: the report names it and emits the event.

The flow runs on the last drift window and the concept window; the first four windows go through
the steps the flow's report task takes for the estimate (read_window, cached_reference,
estimate_window) against the same servers, because Evidently's page costs ~7 s a window here and
the estimate is what is under test.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flows.report import build_reports
from lifecycle.core.events import CONCEPT_DRIFT_SUSPECTED
from lifecycle.core.settings import Settings, get_settings
from lifecycle.data.synthetic import generate_churn
from lifecycle.stores.prediction_store import PredictionStore
from tests.fixtures.estimates import WINDOW, log_window, plain
from tests.integration.test_reporting_flow import _drift_events

pytestmark = pytest.mark.integration

END = datetime(2026, 2, 2, 12, 0, tzinfo=UTC)
DRIFTS = (0.0, 0.25, 0.5, 0.75, 1.0)
ROWS = 2000


def _estimate_only(store: PredictionStore, version: str, end: datetime) -> dict[str, Any]:
    """The report task's estimate of the window ending at `end`, without the Evidently page."""
    from reporting.estimate import estimate_window
    from reporting.reference import cached_reference
    from reporting.window import read_window

    settings = get_settings()
    window = read_window(store, end - WINDOW, end, settings.report_max_rows)
    reference = cached_reference(version, settings)
    primary = reference.primary_metric  # as the report flow passes it
    estimate = estimate_window(window, reference, primary, settings.report_min_labelled)
    return {
        "estimated": estimate.estimated,
        "concept_drift": estimate.concept,
        "concept_drift_suspected": estimate.concept_drift_suspected,
    }


def test_estimate_tracks_accuracy_under_covariate_drift_and_names_concept_drift(
    estimate_model: Any, estimate_env: Settings
) -> None:
    _, version, predictor = estimate_model
    store = PredictionStore(estimate_env.mongo_uri, estimate_env.mongo_db, timeout_ms=10_000)
    table, inside = [], 0
    for i, drift in enumerate(DRIFTS):
        end = END + i * WINDOW
        frame = generate_churn(ROWS, seed=300 + i, drift=drift, concept=0.0)
        _, answers, truth = log_window(store, frame, predictor, version, end)
        if drift < DRIFTS[-1]:
            result = _estimate_only(store, version, end)
        else:
            result = build_reports(window="3h", end=end)
        est = result["estimated"]
        true = float(np.mean(answers == truth))
        value, low, high = est["accuracy"]
        hit = low <= true <= high
        inside += hit
        table.append((drift, value, low, high, true, hit))
        assert value == pytest.approx(true, abs=0.03), table
        # A binary model's main estimate is its primary metric, ROC AUC.
        true_auc = _auc(predictor, frame, truth)
        assert est["metric"] == "roc_auc" and est["rows"] == ROWS
        assert est["value"] == est["roc_auc"][0] == pytest.approx(true_auc, abs=0.03)
        assert result["concept_drift"] is None  # no label arrived
        assert not result["concept_drift_suspected"]
    print("\ncovariate drift | estimated accuracy [95 % interval] | true accuracy | inside")
    for drift, value, low, high, true, hit in table:
        print(f"{drift:15.2f} | {value:.4f} [{low:.4f}, {high:.4f}] | {true:.4f} | {hit}")
    assert inside >= 4, table

    # Concept drift: the inputs do not move, the labels do; every label arrives.
    end = END + len(DRIFTS) * WINDOW
    frame = generate_churn(ROWS, seed=400, drift=0.0, concept=1.0)
    ids, answers, truth = log_window(store, frame, predictor, version, end)
    store.upsert_feedback({pid: plain(t) for pid, t in zip(ids, truth, strict=True)})
    state = build_reports(window="3h", end=end, return_state=True)
    result = state.result()
    concept = result["concept_drift"]
    print(
        f"concept drift 1: estimated {concept['metric']} {concept['estimated']:.4f} "
        f"[{concept['low']:.4f}, {concept['high']:.4f}], realized {concept['realized']:.4f} "
        f"on {concept['rows']} rows"
    )
    assert result["concept_drift_suspected"] is True
    assert concept["metric"] == "roc_auc"
    assert concept["realized"] == pytest.approx(_auc(predictor, frame, truth), abs=1e-12)
    assert concept["realized"] < concept["low"]
    document = store.latest_report()
    assert document["concept_drift_suspected"] is True
    assert document["estimated"]["metric"] == "roc_auc"
    page = Path(result["html_path"]).read_text()
    assert "concept drift suspected" in page
    index = Path(result["index_path"]).read_text()
    assert "concept drift suspected" in index and "Estimated (no labels) and realized" in index
    events = _drift_events(state.state_details.flow_run_id, 1, name=CONCEPT_DRIFT_SUSPECTED)
    assert events[0].payload["realized"] == pytest.approx(concept["realized"])
    store.close()


def _auc(predictor: Any, frame: Any, truth: np.ndarray) -> float:
    """scikit-learn's ROC AUC of the model's positive-class probability on `frame`."""
    from sklearn.metrics import roc_auc_score

    scores = predictor.predict_frame(frame.drop(columns=["churn"]))[1][:, 1]
    return float(roc_auc_score(truth == predictor.spec.classes[1], scores))
