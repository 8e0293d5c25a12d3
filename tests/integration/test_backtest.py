"""The `backtest` flow on real servers: the trained model's registry (sqlite MLflow), 10,000
logged predictions in nx-27017, the flow in process under the Prefect test server.

Replaying the version that served reproduces every logged answer; a second version, trained with
production labels from the same log, is scored without its training rows and its paired counts
are those computed here by hand.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flows.backtest import backtest
from lifecycle.core.settings import Settings
from lifecycle.core.times import utcnow
from lifecycle.data.synthetic import generate_churn
from lifecycle.stores import registry, registry_loading
from lifecycle.stores.backtests import list_backtests
from lifecycle.stores.prediction_store import PredictionStore
from tests.fixtures.estimates import log_window, plain

pytestmark = pytest.mark.integration

ROWS = 10_000
LABELLED = 0.3


def test_backtest_reproduces_the_serving_version_and_scores_a_second_one_without_its_training(
    estimate_model: Any, estimate_env: Settings
) -> None:
    settings, version, predictor = estimate_model
    store = PredictionStore(estimate_env.mongo_uri, estimate_env.mongo_db, timeout_ms=10_000)
    end = utcnow() - timedelta(minutes=1)
    frame = generate_churn(ROWS, seed=500, drift=0.5)
    ids, answers, truth = log_window(store, frame, predictor, version, end)
    rng = np.random.default_rng(1)
    chosen = rng.random(ROWS) < LABELLED
    labels = {pid: plain(t) for pid, t, keep in zip(ids, truth, chosen, strict=True) if keep}
    store.upsert_feedback(labels)

    same = backtest(version=version, window="1d")
    print("\n" + same["summary"])
    assert same["scored"] == ROWS and same["excluded_training_rows"] == 0
    assert same["disagreement"] == 0.0
    assert same["paired"]["wins"] == same["paired"]["losses"] == 0
    assert same["paired"]["ties"] == len(labels)
    assert same["estimated"][version]["rows"] == ROWS - len(labels)

    # A second version, trained on a smaller sample plus the labelled rows of this log.
    from flows.train import run_train_flow

    second_settings = settings.model_copy(
        update={
            "data_source": "synthetic:churn?rows=3000&seed=8",
            "feedback_window": "1d",
            "feedback_min_rows": 100,
            "mongo_uri": estimate_env.mongo_uri,
            "mongo_db": estimate_env.mongo_db,
        }
    )
    second = str(run_train_flow(second_settings, trials=2, search_space="fast").version)
    model_version = registry.get_version(second, estimate_env)
    trained_on = registry_loading.read_run_json(
        registry.train_run_id(model_version), registry.PRODUCTION_IDS_PATH, estimate_env
    )["prediction_ids"]
    assert 0 < len(trained_on) < len(labels) and set(trained_on) <= set(labels)

    other = backtest(version=second, window="1d")
    print(other["summary"])
    assert other["excluded_training_rows"] == len(trained_on)
    assert other["scored"] == ROWS - len(trained_on)
    _, second_predictor = registry_loading.load_predictor(second, estimate_env)
    expected = _paired_by_hand(
        frame, ids, answers, truth, labels, set(trained_on), second_predictor
    )
    paired = other["paired"]
    assert (paired["wins"], paired["losses"], paired["ties"]) == expected
    assert paired["pairs"] == sum(expected)

    stored = list_backtests(store, estimate_env.model_name)
    assert [d["version"] for d in stored[:2]] == [second, version]
    assert json.loads(Path(other["json_path"]).read_text())["paired"]["wins"] == expected[0]
    store.close()


def _paired_by_hand(
    frame: Any,
    ids: list[str],
    served: np.ndarray,
    truth: np.ndarray,
    labels: dict[str, Any],
    excluded: set[str],
    predictor: Any,
) -> tuple[int, int, int]:
    """(challenger right & served wrong, served right & challenger wrong, the rest) over the
    labelled rows the challenger did not train on."""
    keep = np.asarray([pid in labels and pid not in excluded for pid in ids])
    rows = frame.drop(columns=["churn"])[keep]
    challenger = np.asarray(predictor.predict_frame(rows)[0])
    right_c = challenger == truth[keep]
    right_s = served[keep] == truth[keep]
    wins, losses = int(np.sum(right_c & ~right_s)), int(np.sum(~right_c & right_s))
    return wins, losses, int(keep.sum()) - wins - losses
