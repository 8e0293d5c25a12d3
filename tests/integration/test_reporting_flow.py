"""The `build-reports` flow against real servers: nx-27017 (prediction log), a real MLflow store
(the trained model's reference) and a Prefect test server (states, artifacts, events)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from flows.report import build_reports
from lifecycle.core.events import DRIFT_DETECTED as DRIFT_EVENT
from lifecycle.core.settings import Settings
from lifecycle.core.waiting import WaitTimeout, wait_until
from lifecycle.data.synthetic import DRIFTED_COLUMNS, UNDRIFTED_COLUMNS, generate_churn
from lifecycle.stores.prediction_store import PredictionStore
from tests.fixtures.reporting import SeededWindow, TrainedModel, seed_window

pytestmark = pytest.mark.integration

WINDOW = timedelta(hours=3)
END = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def _store(settings: Settings) -> PredictionStore:
    return PredictionStore(settings.mongo_uri, settings.mongo_db)


def _predict(model: TrainedModel):
    predictor = model.predictor()
    return lambda frame: predictor.predict_frame(frame)[0]


def _files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()] if directory.exists() else []


def _drift_events(
    flow_run_id: Any, expect: int, timeout: float = 20.0, name: str = DRIFT_EVENT
) -> list[Any]:
    """`name` events (drift by default) related to one flow run, read back from the Prefect
    server once `expect` have arrived. Ingestion is asynchronous (the test server persists
    events in batches off a message bus), so poll. The event arrived 0.3 s after the run on 2
    cores at load average 10; 20 s leaves room for far worse. Raises WaitTimeout naming the
    events seen."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter

    flt = EventFilter(
        event=EventNameFilter(name=[name]),
        related=EventRelatedFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
    )
    with get_client(sync_client=True) as client:
        return wait_until(
            lambda: client.read_events(filter=flt, limit=50).events,
            f"{expect} {name} event(s) of flow run {flow_run_id}",
            timeout,
            interval=0.5,
            done=lambda events: len(events) >= expect,
        )


def _drift_events_within(flow_run_id: Any, seconds: float) -> list[Any]:
    """Drift events of a flow run that arrive within `seconds` (none expected): returns as soon
    as one does, else the empty list once the bound has passed."""
    try:
        return _drift_events(flow_run_id, expect=1, timeout=seconds)
    except WaitTimeout as exc:
        return exc.observed


def _seed_drifted_window(store: PredictionStore, model: TrainedModel) -> SeededWindow:
    """2,000 drifted predictions in [END - 3h, END), 30 % labelled, and 40 rows on each side
    of the window (just before its start, and from its end on) that the report must leave out."""
    seeded = seed_window(
        store,
        generate_churn(2000, seed=11, drift=1.0),
        _predict(model),
        END,
        WINDOW,
        model.version,
        model.model_name,
        label_share=0.3,
        seed=5,
        proba=model.logged_probabilities(),
    )
    for seed, stop in ((12, END - WINDOW), (13, END + WINDOW)):
        seed_window(
            store,
            generate_churn(40, seed=seed),
            _predict(model),
            stop,
            WINDOW,
            model.version,
            model.model_name,
            1.0,
            seed=seed,
        )
    return seeded


def _assert_drifted_record(record: dict[str, Any], seeded: SeededWindow, version: str) -> None:
    """What the JSON beside the page and the `reports` document both say of the window."""
    assert set(DRIFTED_COLUMNS) <= set(record["drifted_columns"])
    assert not set(UNDRIFTED_COLUMNS) & set(record["drifted_columns"])
    assert record["drift_share"] == pytest.approx(len(DRIFTED_COLUMNS) / 16)
    assert record["rows"] == 2000
    assert record["labelled_rows"] == len(seeded.labels)
    assert record["model_version"] == version
    # A binary model is ranked by ROC AUC; live, from the probabilities logged with each answer.
    assert record["primary_metric"] == "roc_auc"
    assert record["live_metric"] == pytest.approx(seeded.sklearn_roc_auc(), abs=1e-12)
    assert record["metrics"]["roc_auc"] == record["live_metric"]
    low, high = record["metric_intervals"]["roc_auc"]
    assert low < record["live_metric"] < high
    assert record["metrics"]["accuracy"] == pytest.approx(seeded.hand_accuracy(), abs=1e-12)


def _link_artifacts(flow_run_id: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return [a for a in artifacts if a.key == "drift-report-lifecycle-model"]


def test_build_reports_drifted_window_detects_drift_and_live_accuracy(
    reporting_model: TrainedModel, report_env: Settings, reports_prefect: None
) -> None:
    store = _store(report_env)
    seeded = _seed_drifted_window(store, reporting_model)
    version = reporting_model.version

    state = build_reports(window="3h", end=END, return_state=True)

    assert state.is_completed(), state.message
    result = state.result()
    assert result["status"] == "written"
    assert result["rows"] == 2000
    html, summary_path = Path(result["html_path"]), Path(result["json_path"])
    assert html.parent == report_env.reports_dir / version
    assert html.name == "20260105T120000Z.html"
    page = html.read_text()
    assert page.lstrip().lower().startswith("<!doctype html") and "Data drift and summary" in page
    assert "Model quality on" in page  # 600 labels ≥ MLOPS_REPORT_MIN_LABELLED

    doc = store.latest_report(reporting_model.model_name)
    assert doc is not None
    for record in (json.loads(summary_path.read_text()), doc):
        _assert_drifted_record(record, seeded, version)
    assert doc["html_path"] == str(html) and doc["json_path"] == str(summary_path)
    assert doc["window_start"] == END - WINDOW and doc["window_end"] == END
    assert doc["url"] == f"http://reports.test:8088/{version}/20260105T120000Z.html"

    index = (report_env.reports_dir / "index.html").read_text()
    assert f'href="{version}/20260105T120000Z.html"' in index
    assert index.count("<svg") == 6

    flow_run_id = state.state_details.flow_run_id
    events = _drift_events(flow_run_id, expect=1)
    assert len(events) == 1
    event = events[0]
    assert event.resource.id == f"lifecycle.model.{reporting_model.model_name}"
    assert event.payload["drift_share"] == pytest.approx(doc["drift_share"])
    assert set(event.payload["drifted_columns"]) == set(doc["drifted_columns"])
    assert event.payload["report_url"] == doc["url"]

    links = _link_artifacts(flow_run_id)
    assert links and doc["url"] in str(links[0].data)


def test_build_reports_undrifted_window_stays_under_threshold(
    reporting_model: TrainedModel,
    report_env: Settings,
    reports_prefect: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lifecycle.core.settings import get_settings

    # A cap below the window's size: the report must say it compared a sample.
    monkeypatch.setenv("MLOPS_REPORT_MAX_ROWS", "1000")
    get_settings.cache_clear()
    store = _store(report_env)
    frame = generate_churn(1500, seed=21, drift=0.0)
    predict = _predict(reporting_model)
    # The window spans a version swap: older rows from one version, newer from the next.
    older = seed_window(
        store,
        frame.iloc[:700],
        predict,
        END - timedelta(minutes=90),
        timedelta(minutes=90),
        reporting_model.version,
        reporting_model.model_name,
        0.005,
        seed=7,
    )
    newer = seed_window(
        store,
        frame.iloc[700:],
        predict,
        END,
        timedelta(minutes=90),
        reporting_model.next_version,
        reporting_model.model_name,
        0.005,
        seed=8,
    )

    state = build_reports(window="3h", end=END, return_state=True)

    assert state.is_completed(), state.message
    result = state.result()
    assert result["drift_share"] < get_settings().drift_threshold
    assert not result["drift_detected"]
    assert result["sampled"] is True
    assert result["model_version"] == reporting_model.next_version
    doc = _store(report_env).latest_report(reporting_model.model_name)
    assert doc["rows"] == 1500 and doc["rows_compared"] == 1000 and doc["sampled"] is True
    assert doc["versions_in_window"] == {
        reporting_model.version: 700,
        reporting_model.next_version: 800,
    }
    assert doc["labelled_rows"] == len(older.labels) + len(newer.labels) < 30
    assert doc["live_metric"] is None and doc["quality_section"] is False
    page = Path(doc["html_path"]).read_text()
    assert "Sampled:" in page and "several versions" in page
    # No event may come: watch for one for 3 s, 10x the 0.3 s a drift event took to arrive.
    assert _drift_events_within(state.state_details.flow_run_id, 3) == []


@pytest.mark.parametrize("rows", [0, 3])
def test_build_reports_small_window_completes_with_insufficient_data(
    rows: int,
    reporting_model: TrainedModel,
    report_env: Settings,
    reports_prefect: None,
) -> None:
    store = _store(report_env)
    if rows:
        seed_window(
            store,
            generate_churn(rows, seed=31),
            _predict(reporting_model),
            END,
            WINDOW,
            reporting_model.version,
            reporting_model.model_name,
            1.0,
            seed=9,
        )

    state = build_reports(window="3h", end=END, return_state=True)

    assert state.is_completed()
    assert state.message == f"insufficient data: {rows} rows in window"
    assert state.result()["status"] == "insufficient"
    assert _files(report_env.reports_dir) == []
    assert store.latest_report() is None


def test_mlops_report_runs_the_flow(
    reporting_model: TrainedModel, report_env: Settings, reports_prefect: None
) -> None:
    from typer.testing import CliRunner

    from ops.cli import build_app

    store = _store(report_env)
    seed_window(
        store,
        generate_churn(300, seed=41),
        _predict(reporting_model),
        END,
        WINDOW,
        reporting_model.version,
        reporting_model.model_name,
        0.5,
        seed=10,
    )

    outcome = CliRunner().invoke(
        build_app(), ["report", "--window", "3h", "--end", "2026-01-05T12:00:00Z"]
    )

    assert outcome.exit_code == 0, outcome.output
    assert f"report v{reporting_model.version} 300 rows" in outcome.output
    assert (report_env.reports_dir / reporting_model.version / "20260105T120000Z.html").exists()


@contextlib.contextmanager
def _champion_at(settings: Settings, version: str) -> Iterator[Any]:
    """`champion` on `version` for the block; then every alias as it was (the registry is the
    session's: other reporting tests use it). Yields the MLflow client."""
    from lifecycle.stores import registry

    client = registry.client(settings)
    before = registry.aliases(settings)
    client.set_registered_model_alias(settings.model_name, registry.CHAMPION, version)
    try:
        yield client
    finally:
        for alias in (registry.CHAMPION, registry.PREVIOUS, registry.CHALLENGER):
            if alias in before:
                client.set_registered_model_alias(settings.model_name, alias, before[alias])
            elif alias in registry.aliases(settings):
                client.delete_registered_model_alias(settings.model_name, alias)


def _discordant(seeded: SeededWindow, shadow: Any) -> tuple[int, int]:
    """McNemar's b and c counted by hand: labelled rows only the champion, or only the
    shadow, got right."""
    by_id = dict(zip(seeded.ids, zip(seeded.predictions, shadow, strict=True), strict=True))
    pairs = [(by_id[pid], y) for pid, y in seeded.labels.items()]
    b = sum(a == y and s != y for (a, s), y in pairs)
    c = sum(a != y and s == y for (a, s), y in pairs)
    return b, c


def _assert_promoted_by_the_sequential_test(
    running: dict[str, Any], discordant: tuple[int, int], seeded: SeededWindow
) -> None:
    """The experiment's pairs (challenger's wins are McNemar's c), its statistic past 1/alpha
    (alpha 0.05: 20) and its decision, after this one window."""
    b, c = discordant
    counts = running["state"]
    assert (counts["wins"], counts["losses"]) == (c, b)
    assert counts["ties"] == len(seeded.labels) - b - c and counts["windows"] == 1
    assert counts["log_lr_better"] >= np.log(1 / running["alpha"]) and running["alpha"] == 0.05
    assert counts["decision"] == "promote"


def test_build_reports_with_a_better_shadow_shows_the_comparison_and_promotes_it(
    reporting_model: TrainedModel,
    report_env: Settings,
    reports_prefect: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A window answered by the champion and scored by a shadow that is right far more often:
    the page, the JSON, the document and the index carry the paired comparison, its McNemar
    p-value is scipy's binomtest on the discordant pairs, and the sequential test's experiment
    (pairs, statistic) promotes the shadow."""
    from scipy.stats import binomtest

    from lifecycle.core.events import CHALLENGER_PROMOTED
    from lifecycle.core.settings import get_settings
    from lifecycle.stores import registry

    champion, shadow = reporting_model.version, reporting_model.next_version
    monkeypatch.setenv("MLOPS_AUTO_PROMOTE", "true")
    get_settings.cache_clear()
    settings = get_settings()
    frame = generate_churn(1500, seed=23)
    truth = frame["churn"].to_numpy()
    better = np.where(np.random.default_rng(3).random(len(truth)) < 0.97, truth, 1 - truth)
    with _champion_at(settings, champion):
        seeded = seed_window(
            _store(settings), frame, _predict(reporting_model), END, WINDOW, champion,
            reporting_model.model_name, 0.4, seed=8, proba=reporting_model.logged_probabilities(),
            shadow=(shadow, better.tolist(), [{"0": 0.9 - 0.8 * b, "1": 0.1 + 0.8 * b}
                                              for b in better]),
        )  # fmt: skip

        state = build_reports(window="3h", end=END, return_state=True)

        assert state.is_completed(), state.message
        result = state.result()
        b, c = _discordant(seeded, better)
        doc = _store(settings).latest_report(reporting_model.model_name)
        for record in (result, json.loads(Path(result["json_path"]).read_text()), doc):
            experiment, paired = record["experiment"], record["experiment"]["paired"]
            assert (paired["champion"], paired["challenger"]) == (champion, shadow)
            assert paired["pairs"] == len(seeded.labels)
            assert (paired["champion_wins"], paired["challenger_wins"]) == (b, c)
            assert paired["p_value"] == pytest.approx(binomtest(min(b, c), b + c).pvalue)
            assert set(experiment["live_versions"]) == {champion, shadow}
            _assert_promoted_by_the_sequential_test(experiment["sequential"], (b, c), seeded)
            promote = experiment["decisions"][0]
            assert promote["action"] == "promote" and promote["acted"], promote
            assert promote["version"] == shadow
        assert registry.aliases(settings)[registry.CHAMPION] == shadow
        stored = _store(settings).experiments.find_one({"challenger": shadow})
        assert stored["state"]["decision"] == "promote" and stored["state"]["wins"] == c

        page = Path(result["html_path"]).read_text()
        assert "Live comparison" in page and f"paired v{shadow} vs v{champion}" in page
        index = (settings.reports_dir / "index.html").read_text()
        assert f"v{shadow} vs v{champion}: p" in index and f"promoted v{shadow}</span>" in index
        assert 'aria-label="Live roc_auc per version"' in index
        flow_run_id = state.state_details.flow_run_id
        promoted = _drift_events(flow_run_id, expect=1, name=CHALLENGER_PROMOTED)
        assert promoted[0].payload["from_version"] == champion
