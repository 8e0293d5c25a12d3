"""Concept drift in the generator: the label model changes, the features do not."""

from __future__ import annotations

import pandas as pd
import pytest
import xgboost as xgb
from typer.testing import CliRunner

from lifecycle.data import synthetic
from lifecycle.data.sources import load_dataset
from ops.simulation import DriftSchedule, RowSource


def _fit(frame: pd.DataFrame) -> xgb.XGBClassifier:
    features, labels = _xy(frame)
    model = xgb.XGBClassifier(n_estimators=60, max_depth=3, enable_categorical=True, n_jobs=1)
    return model.fit(features, labels)


def _xy(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    frame = frame.copy()
    for column in frame.select_dtypes("object"):
        frame[column] = frame[column].astype("category")
    return frame.drop(columns=[synthetic.TARGET]), frame[synthetic.TARGET]


def test_concept_zero_is_todays_data() -> None:
    pd.testing.assert_frame_equal(
        synthetic.generate_churn(500, seed=4), synthetic.generate_churn(500, seed=4, concept=0.0)
    )


def test_concept_changes_labels_and_keeps_features() -> None:
    base = synthetic.generate_churn(3000, seed=5)
    moved = synthetic.generate_churn(3000, seed=5, concept=1.0)
    pd.testing.assert_frame_equal(
        base.drop(columns=[synthetic.TARGET]), moved.drop(columns=[synthetic.TARGET])
    )
    assert (base[synthetic.TARGET] != moved[synthetic.TARGET]).mean() > 0.2
    # Centred terms: the churn rate barely moves (what changes is who churns).
    assert abs(base[synthetic.TARGET].mean() - moved[synthetic.TARGET].mean()) < 0.08


def test_concept_coefficients_flip_at_one() -> None:
    assert synthetic.coefficients(0.0) == synthetic.COEFFICIENTS
    for name, value in synthetic.coefficients(1.0).items():
        assert value == pytest.approx(-synthetic.COEFFICIENTS[name])


def test_model_trained_on_new_concept_beats_the_old_one_on_new_traffic() -> None:
    old = _fit(synthetic.generate_churn(3000, seed=1))
    new = _fit(synthetic.generate_churn(3000, seed=2, concept=1.0))
    features, labels = _xy(synthetic.generate_churn(3000, seed=3, concept=1.0))
    old_accuracy = (old.predict(features) == labels).mean()
    new_accuracy = (new.predict(features) == labels).mean()
    assert new_accuracy > old_accuracy + 0.1, (old_accuracy, new_accuracy)


def test_source_takes_concept_option() -> None:
    dataset = load_dataset("synthetic:churn?rows=300&seed=5&concept=1")
    pd.testing.assert_frame_equal(dataset.frame, synthetic.generate_churn(300, 5, concept=1.0))


def test_row_source_follows_a_concept_schedule() -> None:
    schedule = DriftSchedule.parse("0:0,30:1.0")
    assert (schedule.at(10), schedule.at(31)) == (0.0, 1.0)
    rows = RowSource(seed=7, block=50)
    before = rows.take(50, 0.0, schedule.at(10))
    after = rows.take(50, 0.0, schedule.at(31))
    expected = synthetic.generate_churn(50, 8, 0.0, 1.0)[synthetic.TARGET].tolist()
    assert [label for _, label in after] == expected
    assert len(before) == 50


def test_simulate_refuses_a_bad_concept_schedule() -> None:
    from ops.cli import build_app

    result = CliRunner().invoke(build_app(), ["simulate", "--concept", "soon"])
    assert result.exit_code == 2
    assert "--concept" in result.output and "concept schedule" in result.output
