"""Training against a real MLflow sqlite store in a temporary MLOPS_HOME."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from flows.train import run_train_flow
from lifecycle.core.settings import get_settings
from lifecycle.data import synthetic
from lifecycle.data.sources import load_dataset
from lifecycle.model.predictor import Predictor
from lifecycle.stores import registry, registry_loading
from tests.fixtures.cli import run_mlops
from tests.fixtures.training import SMALL_SOURCE, seed_mlflow_store

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fifty_trials(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None):
    """One 50-trial search (the default MLOPS_TRIALS) into its own store."""
    from lifecycle.core.settings import Settings

    home = seed_mlflow_store(tmp_path_factory.mktemp("fifty") / "mlops")
    settings = Settings(MLOPS_HOME=str(home))
    result = run_train_flow(
        settings, trials=50, data_source="synthetic:churn?rows=4000&seed=11", search_space="fast"
    )
    return settings, result


def test_train_registers_champion_with_50_nested_trials(fifty_trials) -> None:
    settings, result = fifty_trials
    assert result.promoted and result.alias == "champion"
    client = registry.client(settings)
    champion = client.get_model_version_by_alias(settings.model_name, "champion")
    assert str(champion.version) == result.version

    children = client.search_runs(
        [client.get_run(result.run_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'",
        max_results=200,
    )
    assert len(children) == 50
    for child in children:
        assert {"max_depth", "learning_rate", "subsample"} <= set(child.data.params)
        assert {"val_accuracy", "val_f1", "val_roc_auc", "val_log_loss"} <= set(child.data.metrics)

    tags = champion.tags
    for key in (
        "task",
        "primary_metric",
        "accuracy",
        "f1",
        "roc_auc",
        "log_loss",
        "trained_at",
        "data_fingerprint",
        "train_run_id",
    ):
        assert key in tags, key
    assert tags["task"] == "binary" and tags["primary_metric"] == "roc_auc"
    assert tags["train_run_id"] == result.run_id
    assert float(tags["accuracy"]) == pytest.approx(result.test_metrics["accuracy"], abs=1e-5)

    parent = client.get_run(result.run_id)
    assert parent.data.params["data_hash"] == tags["data_fingerprint"]
    assert "test_accuracy" in parent.data.metrics and "max_depth" in parent.data.params
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert {"plots/feature_importance.png", "plots/confusion_matrix.png"} <= artifacts

    reference = registry_loading.load_reference(champion, settings)
    assert {"churn", "prediction", "gender", "credit_limit"} <= set(reference.columns)
    assert 100 < len(reference) <= 5000


def test_registered_pyfunc_predicts_raw_example_like_the_booster(fifty_trials) -> None:
    settings, _ = fifty_trials
    registry.use(settings)
    uri = f"models:/{settings.model_name}@champion"
    model = mlflow.pyfunc.load_model(uri)
    example = mlflow.models.Model.load(uri).load_input_example(
        mlflow.artifacts.download_artifacts(uri)
    )
    assert example["gender"].dtype == object  # raw strings, categoricals included
    predictor = Predictor.from_pyfunc(model)
    labels, _ = predictor.predict_records(example.to_dict("records"))
    np.testing.assert_array_equal(model.predict(example), np.asarray(labels))
    raw = predictor.booster.inplace_predict(predictor.spec.encode_frame(example))
    assert list((raw > 0.5).astype(int)) == list(model.predict(example))
    batch = synthetic.churn_features(300, seed=99)
    np.testing.assert_array_equal(
        model.predict(batch), np.asarray(predictor.predict_frame(batch)[0])
    )


def test_worse_search_becomes_challenger_and_rollback_restores_previous(
    prefect_harness: None, mlops_home: Path
) -> None:
    settings = get_settings()
    first = run_train_flow(settings, trials=6, data_source=SMALL_SOURCE, search_space="fast")
    assert first.promoted
    worse = run_train_flow(settings, trials=1, data_source=SMALL_SOURCE, search_space="stump")
    assert not worse.promoted and worse.alias == "challenger"
    assert registry.aliases(settings) == {"champion": first.version, "challenger": worse.version}

    # promote the challenger by hand, then roll back through the CLI (in this process: what is
    # under test is the commands, not a process start)
    promoted = run_mlops("promote", worse.version)
    assert promoted.returncode == 0, promoted.stderr
    assert registry.aliases(settings)["champion"] == worse.version
    assert registry.aliases(settings)["previous"] == first.version
    rolled = run_mlops("rollback")
    assert rolled.returncode == 0, rolled.stderr
    assert f"champion -> v{first.version}" in rolled.stdout
    assert registry.aliases(settings)["champion"] == first.version

    unknown = run_mlops("promote", "99")
    assert unknown.returncode == 1
    assert unknown.stderr.strip().splitlines() == [
        f"error: model '{settings.model_name}' has no version '99'"
    ]


def test_s3_source_reads_parquet_from_moto(s3_endpoint: str, monkeypatch) -> None:
    import boto3

    env = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="training")
    frame = synthetic.generate_churn(400, seed=5)
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"churn-{os.getpid()}.parquet"
    frame.to_parquet(path, index=False)
    s3.upload_file(str(path), "training", "data/churn.parquet")
    path.unlink()

    ds = load_dataset("s3://training/data/churn.parquet", target="churn")
    assert ds.task == "binary"
    pd.testing.assert_frame_equal(ds.frame, frame)


def test_train_cli_bad_sources_exit_with_one_line(
    tmp_path: Path, mlops_home: Path, s3_endpoint: str
) -> None:
    (tmp_path / "a.csv").write_text("x,z\n1,2\n3,4\n")
    (tmp_path / "e.csv").write_text("x,y\n")
    (tmp_path / "o.csv").write_text("x,y\n1,a\n2,a\n3,a\n")
    (tmp_path / "d.json").write_text("{}")
    cases = {
        str(tmp_path / "missing.csv"): "file not found",
        str(tmp_path / "a.csv"): "missing target column 'y'",
        str(tmp_path / "e.csv"): "empty table",
        str(tmp_path / "o.csv"): "target 'y' has one class ('a'); need two",
        str(tmp_path / "d.json"): "unreadable format '.json'",
        "s3://no-such-bucket/data.parquet": "unreachable bucket or key",
    }
    env = {
        "MLOPS_TARGET": "y",
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }

    for source, expected in cases.items():
        # In this process: the source is checked before the flows are imported, so a child
        # cost ~2 s of CPU for imports to print one line.
        proc = run_mlops("train", "--data", source, "--trials", "1", env=env)
        assert proc.returncode == 1, (source, proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith(f"error: data source '{source}': "), lines[0]
        assert expected in lines[0], lines[0]


def test_flow_task_retry_recovers_from_one_read_failure(
    prefect_harness: None, mlops_home: Path, monkeypatch
) -> None:
    import flows.train as train_flow_module
    from lifecycle.core.errors import DataSourceError

    monkeypatch.setenv("MLOPS_LOAD_RETRY_DELAY_SECONDS", "0.1")
    get_settings.cache_clear()
    calls = {"n": 0}
    real = train_flow_module.load_dataset

    def flaky(*args, **kwargs):
        # fault injection: the first read fails as a network error would
        calls["n"] += 1
        if calls["n"] == 1:
            raise DataSourceError(args[0], "connection reset by peer", transient=True)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_flow_module, "load_dataset", flaky)
    summary = train_flow_module.run_train_flow(
        trials=2, data_source=SMALL_SOURCE, search_space="fast"
    )
    assert calls["n"] == 2
    assert summary.promoted and len(summary.search.trials) == 2


def test_flow_run_completes_with_markdown_artifact(prefect_harness: None, mlops_home: Path) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    import flows.train as train_flow_module

    state = train_flow_module.train_model(
        trials=3, data_source=SMALL_SOURCE, search_space="fast", return_state=True
    )
    assert state.is_completed(), state
    flow_run_id = state.state_details.flow_run_id

    import anyio

    async def read():
        async with get_client() as client:
            run = await client.read_flow_run(flow_run_id)
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
                )
            )
            return run, artifacts

    run, artifacts = anyio.run(read)
    assert run.name == "train-3-trials" and run.state.is_completed()
    markdown = [a for a in artifacts if a.type == "markdown"]
    assert len(markdown) == 1
    text = markdown[0].data
    assert "promoted to `champion`" in text and "## Top 3 of 3 trials" in text
    assert "## Chosen parameters" in text and "| accuracy |" in text
