"""The report lists the categories the model never saw, against real servers: the API (in this
process, MLOPS_UNSEEN_CATEGORY=missing) logs real requests to nx-27017, the real `build-reports`
flow runs under the Prefect test harness on the trained model's MLflow store, and the `reports`
document, the JSON beside the page, the page and the index all name the values and their
counts. A sampled window (documents built as the API builds them) says its counts are of the
sample and estimates the window's."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flows.report import build_reports
from lifecycle.core.settings import Settings, get_settings
from lifecycle.core.waiting import wait_until
from lifecycle.stores.documents import prediction_document
from lifecycle.stores.prediction_store import PredictionStore
from reporting.unseen import TIMES
from tests.fixtures.reporting import TrainedModel
from tests.fixtures.serving import churn_records, in_process_settings, serve_in_process

pytestmark = pytest.mark.integration

END = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
WINDOW = timedelta(hours=3)


def _store(settings: Settings) -> PredictionStore:
    return PredictionStore(settings.mongo_uri, settings.mongo_db, timeout_ms=10_000)


def _in_page(page: str, text: str) -> bool:
    """`text` in the page's "About this report": Evidently embeds it with json.dumps (non-ASCII
    and backslashes escaped), so look for it encoded the same way."""
    return json.dumps(text)[1:-1] in page


@pytest.fixture
def served(
    reporting_model: TrainedModel, report_env: Settings, tmp_path: Path
) -> Iterator[tuple[Any, str]]:
    """The API serving the reporting model's champion with MLOPS_UNSEEN_CATEGORY=missing, logging
    to this test's prediction log; yields the client and the version it serves."""
    from lifecycle.stores import registry

    settings = reporting_model.settings
    version = registry.aliases(settings).get(registry.CHAMPION)
    assert version is not None, "the reporting model's first training promotes a champion"
    api_settings = in_process_settings(
        tmp_path / "api",
        settings.mlflow_tracking_uri,
        report_env.mongo_uri,
        report_env.mongo_db,
        MLOPS_UNSEEN_CATEGORY="missing",
    )
    with serve_in_process(api_settings) as client:
        yield client, version


def _send(client: Any) -> list[dict[str, Any]]:
    """120 rows as a client sends them: 7 unseen card categories (a new one and a typo) and one
    unseen gender; returns the answer's `unseen` list."""
    rows = churn_records(120, seed=61)
    for i in range(5):
        rows[i * 10] = {**rows[i * 10], "card_category": "Titanium"}
    for i in (3, 4):
        rows[i] = {**rows[i], "card_category": "Bleu"}
    rows[4] = {**rows[4], "gender": "X"}
    answer = client.post("/predict", json=rows)
    assert answer.status_code == 200, answer.text
    return answer.json()["unseen"]


def test_report_lists_the_unseen_values_the_api_logged(
    served: tuple[Any, str], report_env: Settings, reports_prefect: None
) -> None:
    client, version = served
    unseen = _send(client)
    assert len(unseen) == 8
    store = _store(report_env)
    # The shipper writes off the request path: ~1 s alone, far more on a loaded 2-core machine.
    wait_until(
        lambda: store.predictions.count_documents({}),
        "the 120 documents to be shipped",
        60,
        0.2,
        done=lambda n: n == 120,
    )
    assert store.predictions.count_documents({"unseen": {"$exists": True}}) == 7

    # The requests were logged now: a window ending a minute from now holds them all.
    end = datetime.now(UTC) + timedelta(minutes=1)
    state = build_reports(window="3h", end=end, return_state=True)

    assert state.is_completed(), state.message
    result = state.result()
    expected = {
        "card_category": {"rows": 7, "values": [["Titanium", 5], ["Bleu", 2]], "other": 0},
        "gender": {"rows": 1, "values": [["X", 1]], "other": 0},
    }
    assert result["rows"] == 120 and result["model_version"] == version
    doc = store.latest_report(report_env.model_name)
    summary = json.loads(Path(result["json_path"]).read_text())
    for record in (result, summary, doc):
        assert record["unseen_categories"] == expected
    assert "unseen categories in 2 feature(s)" in result["message"]

    page = Path(result["html_path"]).read_text()
    assert _in_page(
        page,
        "**Unseen categories** scored as missing (`MLOPS_UNSEEN_CATEGORY=missing`): "
        f"card\\_category: 'Titanium' {TIMES} 5, 'Bleu' {TIMES} 2; gender: 'X' {TIMES} 1.",
    )
    index = (report_env.reports_dir / "index.html").read_text()
    assert '<span title="card_category, gender">2 features</span>' in index


def _seed_sampled(store: PredictionStore, version: str, model_name: str) -> list[dict]:
    """400 predictions in the window as the API logs them (`prediction_document`), every 4th
    with an unseen card category: 80 'Titanium', 20 'Bleu'."""
    rows = churn_records(400, seed=62)
    step = WINDOW / len(rows)
    docs = []
    for i, features in enumerate(rows):
        unseen = None
        if i % 4 == 0:
            unseen = {"card_category": "Bleu" if i % 20 == 0 else "Titanium"}
            features = {**features, **unseen}  # `features` keeps the value as sent
        docs.append(
            prediction_document(
                str(uuid.UUID(int=i + 1)),
                END - WINDOW + step * i,
                model_name,
                version,
                features,
                i % 2,
                latency_ms=1.0,
                unseen=unseen,
            )
        )
    store.ensure_indexes()
    store.insert_predictions(docs)
    return docs


def test_report_on_a_sampled_window_counts_the_sample_and_estimates_the_window(
    reporting_model: TrainedModel,
    report_env: Settings,
    reports_prefect: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLOPS_REPORT_MAX_ROWS", "100")  # a quarter of the window
    get_settings.cache_clear()
    store = _store(report_env)
    docs = _seed_sampled(store, reporting_model.version, reporting_model.model_name)

    state = build_reports(window="3h", end=END, return_state=True)

    assert state.is_completed(), state.message
    result = state.result()
    assert result["sampled"] and result["rows"] == 400
    p = result["sample_fraction"]
    assert p == pytest.approx(0.25)
    # Counted by hand on the rows the sample holds (sample_key < p, the `cap` smallest keys).
    kept = sorted(docs, key=lambda d: d["sample_key"])[: result["rows_compared"]]
    by_value = {"Titanium": 0, "Bleu": 0}
    for d in kept:
        if "unseen" in d:
            by_value[d["unseen"]["card_category"]] += 1
    rows = sum(by_value.values())
    assert 0 < rows < 100  # a sample of the 100 unseen rows, not all of them
    values = [[v, n] for v, n in sorted(by_value.items(), key=lambda kv: (-kv[1], kv[0])) if n]
    expected = {
        "card_category": {
            "rows": rows,
            "values": values,
            "other": 0,
            "estimated_rows": round(rows / p),
        }
    }
    doc = store.latest_report(reporting_model.model_name)
    summary = json.loads(Path(result["json_path"]).read_text())
    for record in (summary, doc):
        assert record["unseen_categories"] == expected

    page = Path(result["html_path"]).read_text()
    shown = ", ".join(f"'{v}' {TIMES} {n}" for v, n in values)
    assert _in_page(page, f"card\\_category: {shown} (about {round(rows / p)} rows of the window)")
    assert _in_page(page, f"Counted on the sample ({result['rows_compared']} of the window's 400")
