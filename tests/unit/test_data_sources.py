"""Data sources: what each returns (local files and S3 objects on a moto server), and the one-line
errors for bad ones."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pandas as pd
import pytest

from lifecycle.core.errors import DataSourceError
from lifecycle.data import synthetic
from lifecycle.data.dataset import infer_task
from lifecycle.data.sources import load_dataset


@pytest.mark.parametrize(
    ("source", "task", "target"),
    [
        ("sklearn:iris", "multiclass", "target"),
        ("sklearn:breast_cancer", "binary", "target"),
        ("sklearn:diabetes", "regression", "target"),
        ("synthetic:churn?rows=500", "binary", "churn"),
    ],
)
def test_load_dataset_builtin_sources(source: str, task: str, target: str) -> None:
    ds = load_dataset(source)
    assert ds.task == task
    assert ds.target == target
    assert len(ds.frame) > 100
    assert ds.fingerprint()["rows"] == len(ds.frame)


def test_synthetic_churn_is_seeded_and_mixes_types() -> None:
    a = synthetic.generate_churn(300, seed=1)
    b = synthetic.generate_churn(300, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert a["gender"].dtype == object and a["credit_limit"].dtype == float
    # guards the label model: neither class may vanish, or accuracy becomes meaningless
    assert 0.15 < a["churn"].mean() < 0.6


def test_synthetic_drift_moves_only_the_drifted_columns() -> None:
    base = synthetic.generate_churn(4000, seed=3)
    drifted = synthetic.generate_churn(4000, seed=3, drift=1.0)
    assert drifted["customer_age"].mean() > base["customer_age"].mean() + 5
    assert drifted["total_trans_ct"].mean() < base["total_trans_ct"].mean() - 10
    assert (drifted["card_category"] != "Blue").mean() > (base["card_category"] != "Blue").mean()
    for column in ("dependent_count", "months_on_book", "credit_limit"):
        assert abs(drifted[column].mean() - base[column].mean()) < 0.05 * base[column].mean() + 0.1


def test_load_dataset_reads_csv_and_parquet(tmp_path: Path) -> None:
    frame = synthetic.generate_churn(200, seed=2)
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    for name in ("d.csv", "d.parquet"):
        ds = load_dataset(str(tmp_path / name), target="churn")
        assert ds.task == "binary" and len(ds.frame) == 200
        assert set(ds.features.columns) == set(frame.columns) - {"churn"}


def test_infer_task_tells_quantities_from_classes() -> None:
    assert infer_task(pd.Series([0.5, 1.25, 3.0])) == "regression"
    assert infer_task(pd.Series(range(200))) == "regression"
    assert infer_task(pd.Series(["a", "b", "a"])) == "binary"
    assert infer_task(pd.Series([0, 1, 2, 1])) == "multiclass"


def _bad(tmp_path: Path, kind: str) -> tuple[str, str | None, str]:
    """(source, target, expected message fragment) for one kind of bad source."""
    if kind == "missing file":
        return str(tmp_path / "nope.csv"), "y", "file not found"
    if kind == "missing target":
        (tmp_path / "a.csv").write_text("x,z\n1,2\n3,4\n")
        return str(tmp_path / "a.csv"), "y", "missing target column 'y'"
    if kind == "empty table":
        (tmp_path / "e.csv").write_text("x,y\n")
        return str(tmp_path / "e.csv"), "y", "empty table"
    if kind == "one class":
        (tmp_path / "o.csv").write_text("x,y\n1,a\n2,a\n3,a\n")
        return str(tmp_path / "o.csv"), "y", "has one class"
    if kind == "unreadable format":
        (tmp_path / "d.xlsx").write_text("not a spreadsheet")
        return str(tmp_path / "d.xlsx"), "y", "unreadable format '.xlsx'"
    (tmp_path / "broken.parquet").write_text("this is not parquet")
    return str(tmp_path / "broken.parquet"), "y", "unreadable parquet file"


@pytest.mark.parametrize(
    "kind",
    ["missing file", "missing target", "empty table", "one class", "unreadable format", "corrupt"],
)
def test_load_dataset_bad_source_names_source_and_cause(tmp_path: Path, kind: str) -> None:
    source, target, expected = _bad(tmp_path, kind)
    with pytest.raises(DataSourceError) as info:
        load_dataset(source, target=target)
    message = str(info.value)
    assert "\n" not in message
    assert source in message and expected in message
    assert not info.value.transient


def test_load_dataset_unknown_scheme_options_are_rejected() -> None:
    with pytest.raises(DataSourceError, match="unknown option"):
        load_dataset("synthetic:churn?rowz=10")
    with pytest.raises(DataSourceError, match="unknown sklearn set"):
        load_dataset("sklearn:titanic")


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    """A fresh bucket on the session's moto S3 server, reached through the standard env chain."""
    import boto3

    for key, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3")
    bucket = f"data-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_load_dataset_reads_s3_objects_round_trip(s3_bucket, suffix: str) -> None:
    client, bucket = s3_bucket
    frame = synthetic.generate_churn(400, seed=5)
    buffer = io.BytesIO()
    if suffix == ".csv":
        frame.to_csv(buffer, index=False)
    else:
        frame.to_parquet(buffer, index=False)
    client.put_object(Bucket=bucket, Key=f"churn/train{suffix}", Body=buffer.getvalue())

    ds = load_dataset(f"s3://{bucket}/churn/train{suffix}", target="churn")

    assert ds.task == "binary" and ds.target == "churn"
    assert ds.frame.shape == (400, len(frame.columns))
    assert list(ds.frame.columns) == list(frame.columns)
    assert set(ds.features.columns) == set(frame.columns) - {"churn"}
    # every value, dtype included, comes back as written (CSV floats round-trip: pandas writes
    # the shortest repr that reads back to the same double)
    pd.testing.assert_frame_equal(ds.frame, frame)
    assert ds.fingerprint()["rows"] == 400 and ds.fingerprint()["columns"] == len(frame.columns)
