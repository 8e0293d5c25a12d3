"""Data sources, chosen by `MLOPS_DATA_SOURCE`, each returning a validated `Dataset`.

    synthetic:churn?rows=N&seed=S&drift=D&concept=C   built-in churn generator (synthetic.py)
    sklearn:iris | sklearn:breast_cancer | sklearn:diabetes
    path/to/file.csv | path/to/file.parquet
    s3://bucket/key.csv|.parquet             through prefect-aws (MLOPS_S3_BLOCK or env credentials)
    feedback:14d                             labelled production rows (feedback.py)

Every failure raises DataSourceError with the source and the cause in one line.
"""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pandas as pd

from lifecycle.core.errors import DataSourceError
from lifecycle.core.settings import Task, get_settings
from lifecycle.data import feedback, synthetic
from lifecycle.data.dataset import Dataset, dataset_from_frame

SKLEARN_SETS = {"iris": "multiclass", "breast_cancer": "binary", "diabetes": "regression"}


def load_dataset(
    source: str, target: str | None = None, task: Task | None = None, s3_block: str | None = None
) -> Dataset:
    """Read `source`, resolve target and task, and check the table is fit to train on."""
    if source.startswith(feedback.PREFIX):
        return feedback.read_source(source, get_settings(), target, task)
    frame, default_target = _read(source, s3_block)
    return dataset_from_frame(frame, source, target or default_target, task)


def _read(source: str, s3_block: str | None) -> tuple[pd.DataFrame, str | None]:
    if source.startswith("synthetic:"):
        return _read_synthetic(source), synthetic.TARGET
    if source.startswith("sklearn:"):
        return _read_sklearn(source), "target"
    if source.startswith("s3://"):
        return _read_bytes(source, _s3_bytes(source, s3_block)), None
    path = Path(source).expanduser()
    if not path.exists():
        raise DataSourceError(source, "file not found")
    if path.is_dir():
        raise DataSourceError(source, "is a directory, expected a .csv or .parquet file")
    return _read_bytes(source, path.read_bytes()), None


def _read_synthetic(source: str) -> pd.DataFrame:
    parts = urlsplit(source)
    name = parts.path
    if name != "churn":
        raise DataSourceError(source, f"unknown synthetic set {name!r}; expected 'churn'")
    options = dict(parse_qsl(parts.query))
    unknown = set(options) - {"rows", "seed", "drift", "concept"}
    if unknown:
        raise DataSourceError(
            source, f"unknown option(s) {sorted(unknown)}; use rows, seed, drift, concept"
        )
    try:
        rows = int(options.get("rows", 20_000))
        seed = int(options.get("seed", 0))
        drift = float(options.get("drift", 0.0))
        concept = float(options.get("concept", 0.0))
    except ValueError as exc:
        raise DataSourceError(source, f"bad option value ({exc})") from None
    if rows < 1:
        raise DataSourceError(source, "empty table (rows must be at least 1)")
    return synthetic.generate_churn(rows, seed, drift, concept)


def _read_sklearn(source: str) -> pd.DataFrame:
    from sklearn import datasets

    name = source.removeprefix("sklearn:")
    if name not in SKLEARN_SETS:
        raise DataSourceError(source, f"unknown sklearn set; expected one of {list(SKLEARN_SETS)}")
    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    return bunch.frame


def _read_bytes(source: str, data: bytes) -> pd.DataFrame:
    suffix = Path(urlsplit(source).path).suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(io.BytesIO(data))
        if suffix in {".parquet", ".pq"}:
            return pd.read_parquet(io.BytesIO(data))
    except pd.errors.EmptyDataError:
        raise DataSourceError(source, "empty table (no rows)") from None
    except Exception as exc:  # parsers raise many types; all mean the same thing to a user
        raise DataSourceError(
            source, f"unreadable {suffix[1:]} file ({type(exc).__name__}: {exc})"
        ) from None
    raise DataSourceError(
        source, f"unreadable format {suffix or '(none)'!r}; expected .csv or .parquet"
    )


def _s3_bytes(source: str, s3_block: str | None) -> bytes:
    """Fetch an S3 object through prefect-aws: a saved S3Bucket block, or env credentials."""
    parts = urlsplit(source)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if not bucket or not key:
        raise DataSourceError(source, "expected s3://bucket/key")
    try:
        from prefect_aws import AwsCredentials, S3Bucket

        if s3_block:
            block = S3Bucket.load(s3_block)
            if block.bucket_name != bucket:
                block = S3Bucket(bucket_name=bucket, credentials=block.credentials)
        else:
            # AwsCredentials() resolves the standard chain: env vars, profile, instance role,
            # and botocore honours AWS_ENDPOINT_URL for S3-compatible stores.
            block = S3Bucket(bucket_name=bucket, credentials=AwsCredentials())
        return block.read_path(key)
    except DataSourceError:
        raise
    except Exception as exc:  # botocore errors are many; the user needs the bucket and cause
        cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        permanent = code in {"NoSuchKey", "NoSuchBucket", "404", "403", "AccessDenied"}
        raise DataSourceError(
            source, f"unreachable bucket or key ({cause})", transient=not permanent
        ) from None
