"""Shadow and canary challengers: the app in this process (its lifespan, watcher, journal and
shipper running) on a registry of its own with two versions trained on different regimes, logging
to the session's MongoDB-wire server."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lifecycle.core.settings import Settings
from lifecycle.core.waiting import wait_until
from lifecycle.stores import registry
from serving.shadow import canary_bucket
from tests.fixtures.serving import (
    API_KEY,
    churn_records,
    in_process_settings,
    mongo_collection,
    serve_in_process,
)
from tests.fixtures.training import seed_mlflow_store


@dataclass(frozen=True)
class TwoVersions:
    settings: Settings
    champion: str
    challenger: str


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> TwoVersions:
    """champion = a model of the old regime, challenger = one of the concept-drifted regime (one
    trial each, small data: their answers differ, which is all these tests need)."""
    from flows.train import run_train_flow

    home = seed_mlflow_store(tmp_path_factory.mktemp("shadow") / "mlops")
    settings = Settings(MLOPS_HOME=str(home), MLOPS_SEARCH_SPACE="fast")
    old = run_train_flow(settings, trials=1, data_source="synthetic:churn?rows=800&seed=3", seed=3)
    new = run_train_flow(
        settings, trials=1, data_source="synthetic:churn?rows=800&seed=4&concept=1", seed=4
    )
    client = registry.client(settings)
    client.set_registered_model_alias(settings.model_name, registry.CHAMPION, old.version)
    client.set_registered_model_alias(settings.model_name, registry.CHALLENGER, new.version)
    return TwoVersions(settings, old.version, new.version)


@pytest.fixture
def app_with(two_versions: TwoVersions, mongo_server, tmp_path: Path) -> Iterator:
    """Start the app with extra settings; waits until champion and challenger are loaded."""
    opened = []

    def start(**extra: object):
        settings = in_process_settings(
            tmp_path / f"api-{len(opened)}",
            two_versions.settings.mlflow_tracking_uri,
            mongo_server.uri,
            f"shadow{uuid.uuid4().hex[:8]}",
            **extra,
        )
        context = serve_in_process(settings)
        client = context.__enter__()
        opened.append(context)
        challenger = client.app.state.challenger
        # Loading a version: 1-3 s alone, up to ~20 s on a loaded 2-core machine.
        wait_until(lambda: challenger.holder.current, "the challenger to load", 120, 0.1)
        return client, settings

    yield start
    for context in reversed(opened):
        context.__exit__(None, None, None)


def test_shadow_answers_with_the_champion_and_logs_the_challengers_own_output(
    app_with, two_versions: TwoVersions
) -> None:
    client, settings = app_with(MLOPS_SHADOW_ALIAS="challenger")
    records = churn_records(60, seed=21)
    answers = [client.post("/predict", json=records[:40]).json()]
    answers += [client.post("/predict", json=record).json() for record in records[40:]]
    assert {a["model_version"] for a in answers} == {two_versions.champion}
    champion = client.app.state.holder.current
    challenger = client.app.state.challenger.holder.current
    own, _ = champion.predict(champion.validator.encode(records, len(records)))
    assert [p for a in answers for p in a["predictions"]] == own

    ids = [pid for a in answers for pid in a["prediction_ids"]]
    collection = mongo_collection(settings.mongo_uri, settings.mongo_db)
    # Shipped by the shipper process: ~1 s alone, up to ~30 s on a loaded 2-core machine.
    wait_until(
        lambda: collection.count_documents({"_id": {"$in": ids}}),
        "the 60 documents to be shipped",
        60,
        0.2,
        done=lambda n: n == len(ids),
    )
    documents = {d["_id"]: d for d in collection.find({"_id": {"$in": ids}})}
    theirs, their_proba = challenger.predict(challenger.validator.encode(records, len(records)))
    assert theirs != own  # the two regimes disagree somewhere: the check below means something
    for i, pid in enumerate(ids):
        document = documents[pid]
        assert document["model_version"] == two_versions.champion
        assert document["prediction"] == own[i]
        shadow = document["shadow"]
        assert shadow["model_version"] == two_versions.challenger
        assert shadow["prediction"] == theirs[i]
        assert shadow["probabilities"]["1"] == pytest.approx(float(their_proba[i][1]), rel=1e-6)


def test_canary_answers_its_share_and_sticks_to_an_entity(
    app_with, two_versions: TwoVersions
) -> None:
    client, _ = app_with(MLOPS_CANARY_PERCENT=30, MLOPS_LOG_PREDICTIONS=False)
    record = churn_records(1, seed=5)[0]
    served = Counter(
        client.post("/predict", json=record).headers["x-model-version"] for _ in range(2000)
    )
    share = served[two_versions.challenger] / 2000 * 100
    assert 25 <= share <= 35, served
    assert set(served) == {two_versions.champion, two_versions.challenger}

    for entity in ("customer-7", "customer-12", "customer-99"):
        expected = two_versions.challenger if canary_bucket(entity) < 30 else two_versions.champion
        versions = {
            client.post("/predict", json=record, headers={"X-Entity-Id": entity}).json()[
                "model_version"
            ]
            for _ in range(20)
        }
        assert versions == {expected}
    entities = Counter(canary_bucket(f"customer-{i}") < 30 for i in range(2000))
    assert 25 <= entities[True] / 20 <= 35


def test_canary_worse_than_the_champion_is_stopped_for_harm_by_the_report_flow(
    app_with, two_versions: TwoVersions, tmp_path: Path
) -> None:
    """A canary (30 %) with a shadow, so every labelled row is a pair, of a challenger trained on
    another concept: on this traffic it is worse. The report flow's sequential test stops it:
    the `challenger` alias goes, an event is emitted, and the API stops sending it traffic."""
    from flows.report import build_reports
    from lifecycle.core.settings import using
    from lifecycle.data.synthetic import generate_churn

    client, settings = app_with(
        MLOPS_SHADOW_ALIAS="challenger", MLOPS_CANARY_PERCENT=30, MLOPS_MODEL_POLL_SECONDS=1
    )
    frame = generate_churn(1500, seed=31)
    records = frame.drop(columns=["churn"]).to_dict("records")
    labels, served = {}, Counter()
    for start in range(0, len(records), 5):
        answer = client.post("/predict", json=records[start : start + 5]).json()
        served[answer["model_version"]] += 1
        for offset, pid in enumerate(answer["prediction_ids"]):
            labels[pid] = int(frame["churn"].iloc[start + offset])
    assert served[two_versions.challenger] > 50  # the canary answered its share
    feedback = [{"prediction_id": pid, "actual": y} for pid, y in labels.items()]
    for start in range(0, len(feedback), 300):  # under MAX_BATCH labels a request
        chunk = feedback[start : start + 300]
        answer = client.post("/feedback", json=chunk, headers={"X-API-Key": API_KEY})
        assert answer.status_code == 200, answer.text
    collection = mongo_collection(settings.mongo_uri, settings.mongo_db)
    wait_until(
        lambda: collection.count_documents({}),
        "the 1,500 predictions to be shipped",
        120,
        0.2,
        done=lambda n: n == len(labels),
    )
    report_settings = settings.model_copy(update={"reports_dir_override": tmp_path / "reports"})
    try:
        with using(report_settings):
            state = build_reports(window="3h", return_state=True)
        assert state.is_completed(), state.message
        experiment = state.result()["experiment"]
        running = experiment["sequential"]
        assert running["challenger"] == two_versions.challenger
        assert running["state"]["decision"] == "stop-harm"
        assert running["state"]["losses"] > running["state"]["wins"]  # champion right alone
        stop = experiment["decisions"][0]
        assert stop["action"] == "stop" and stop["acted"], stop
        assert registry.CHALLENGER not in registry.aliases(two_versions.settings)
        store_document = mongo_collection(settings.mongo_uri, settings.mongo_db, "experiments")
        assert store_document.find_one()["state"]["decision"] == "stop-harm"
        # The API lets the challenger go: every answer is the champion's again.
        challenger = client.app.state.challenger
        wait_until(lambda: challenger.holder.current is None, "the canary to stop", 60, 0.2)
        after = {
            client.post("/predict", json=records[i]).json()["model_version"] for i in range(60)
        }
        assert after == {two_versions.champion}
    finally:  # the module's other tests use the alias
        registry.set_alias(registry.CHALLENGER, two_versions.challenger, two_versions.settings)
