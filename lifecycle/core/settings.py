"""The one settings object. Every module reads configuration through `get_settings()`.

Values come from the environment, then `.env.local` (the local defaults), then the defaults
below, which are enough for `make demo` with nothing running beforehand.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, computed_field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Task = Literal["binary", "multiclass", "regression"]

# Metrics where a smaller value is better; every other metric is "higher is better".
LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss"})


class Settings(BaseSettings):
    """Configuration for every part of Lifecycle (see the README's settings table)."""

    model_config = SettingsConfigDict(
        env_file=".env.local", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    home: Path = Field(Path(".mlops"), validation_alias="MLOPS_HOME")
    mlflow_tracking_uri_override: str | None = Field(None, validation_alias="MLFLOW_TRACKING_URI")
    experiment: str = Field("lifecycle", validation_alias="MLOPS_EXPERIMENT")
    model_name: str = Field("lifecycle-model", validation_alias="MLOPS_MODEL_NAME")

    data_source: str = Field("synthetic:churn", validation_alias="MLOPS_DATA_SOURCE")
    target: str | None = Field(None, validation_alias="MLOPS_TARGET")
    task: Task | None = Field(None, validation_alias="MLOPS_TASK")
    s3_block: str | None = Field(None, validation_alias="MLOPS_S3_BLOCK")

    trials: int = Field(50, ge=1, validation_alias="MLOPS_TRIALS")
    search_space: str = Field("default", validation_alias="MLOPS_SEARCH_SPACE")
    seed: int = Field(42, validation_alias="MLOPS_SEED")
    primary_metric_override: str | None = Field(None, validation_alias="MLOPS_PRIMARY_METRIC")
    min_metric: float | None = Field(None, validation_alias="MLOPS_MIN_METRIC")
    max_metric: float | None = Field(None, validation_alias="MLOPS_MAX_METRIC")
    # A classifier ranked by another metric (binary: ROC AUC) keeps its accuracy alerts: the
    # exporter publishes these as accuracy's alert thresholds (they gate nothing).
    min_accuracy: float | None = Field(0.70, validation_alias="MLOPS_MIN_ACCURACY")
    max_accuracy: float | None = Field(0.995, validation_alias="MLOPS_MAX_ACCURACY")
    promotion_tolerance: float | None = Field(None, validation_alias="MLOPS_PROMOTION_TOLERANCE")
    load_retries: int = Field(3, ge=0, validation_alias="MLOPS_LOAD_RETRIES")
    load_retry_delay_seconds: float = Field(
        5, ge=0, validation_alias="MLOPS_LOAD_RETRY_DELAY_SECONDS"
    )
    train_retries: int = Field(1, ge=0, validation_alias="MLOPS_TRAIN_RETRIES")
    train_timeout_seconds: float = Field(3600, gt=0, validation_alias="MLOPS_TRAIN_TIMEOUT_SECONDS")
    train_retry_delay_seconds: float = Field(
        60, ge=0, validation_alias="MLOPS_TRAIN_RETRY_DELAY_SECONDS"
    )
    # Distributed search (README "Scale out"): the Dask scheduler trials run on (unset = local);
    # trials in flight (unset = four per cluster worker thread); XGBoost nthread
    # per trial (unset: XGBoost's default locally, 1 on a cluster); `make up`'s local workers.
    dask_address: str | None = Field(None, validation_alias="MLOPS_DASK_ADDRESS")
    parallel_trials: int | None = Field(None, ge=1, validation_alias="MLOPS_PARALLEL_TRIALS")
    trial_threads: int | None = Field(None, ge=1, validation_alias="MLOPS_TRIAL_THREADS")
    dask_workers: int = Field(0, ge=0, validation_alias="MLOPS_DASK_WORKERS")

    mongo_uri: str = Field("mongodb://127.0.0.1:27017", validation_alias="MONGO_URI")
    mongo_db: str = Field("lifecycle", validation_alias="MLOPS_MONGO_DB")

    model_alias: str = Field("champion", validation_alias="MLOPS_MODEL_ALIAS")
    model_poll_seconds: float = Field(30, gt=0, validation_alias="MLOPS_MODEL_POLL_SECONDS")
    api_key: str | None = Field(None, validation_alias="MLOPS_API_KEY")
    protect_predict: bool = Field(False, validation_alias="MLOPS_PROTECT_PREDICT")
    max_batch: int = Field(10_000, ge=1, validation_alias="MLOPS_MAX_BATCH")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, validation_alias="MLOPS_MAX_BODY_BYTES")
    log_predictions: bool = Field(True, validation_alias="MLOPS_LOG_PREDICTIONS")
    # Requests whose log rows wait in memory for the journal writer (every 0.1 s); beyond it a
    # request journals its own row before answering. 0: every answer is in the journal (the page
    # cache) before it is sent, so a SIGKILL or OOM kill of the API loses no answered row.
    log_queue: int = Field(10_000, ge=0, validation_alias="MLOPS_LOG_QUEUE")
    # Stream serving (README "Stream"; AWS credentials, region and endpoint come from boto3's
    # own AWS_* settings). Streams read, written and dead-lettered; where a shard without a
    # checkpoint starts; records per GetRecords; largest record accepted; pause per shard when
    # it is caught up; shard-list refresh (resharding); botocore retry mode and attempts; the
    # consumer's /metrics port (0: none); `make up` runs `mlops kinesis` + `mlops stream` if true.
    stream_in: str = Field("predictions", validation_alias="MLOPS_STREAM_IN")
    stream_out: str = Field("results", validation_alias="MLOPS_STREAM_OUT")
    stream_dlq: str = Field("predictions-dlq", validation_alias="MLOPS_STREAM_DLQ")
    stream_start: Literal["TRIM_HORIZON", "LATEST"] = Field(
        "TRIM_HORIZON", validation_alias="MLOPS_STREAM_START"
    )
    stream_batch: int = Field(1000, ge=1, le=10_000, validation_alias="MLOPS_STREAM_BATCH")
    stream_max_record_bytes: int = Field(
        256 * 1024, ge=64, le=1 << 20, validation_alias="MLOPS_STREAM_MAX_RECORD_BYTES"
    )
    stream_idle_seconds: float = Field(0.2, ge=0, validation_alias="MLOPS_STREAM_IDLE_SECONDS")
    stream_refresh_seconds: float = Field(30, gt=0, validation_alias="MLOPS_STREAM_REFRESH_SECONDS")
    stream_retry_mode: Literal["standard", "adaptive"] = Field(
        "standard", validation_alias="MLOPS_STREAM_RETRY_MODE"
    )
    stream_max_attempts: int = Field(8, ge=1, validation_alias="MLOPS_STREAM_MAX_ATTEMPTS")
    stream_metrics_port: int = Field(
        9110, ge=0, le=65535, validation_alias="MLOPS_STREAM_METRICS_PORT"
    )
    stream_enabled: bool = Field(False, validation_alias="MLOPS_STREAM")

    reports_dir_override: Path | None = Field(None, validation_alias="MLOPS_REPORTS_DIR")
    report_window: str = Field("3h", validation_alias="MLOPS_REPORT_WINDOW")
    report_min_rows: int = Field(50, ge=1, validation_alias="MLOPS_REPORT_MIN_ROWS")
    report_min_labelled: int = Field(30, ge=1, validation_alias="MLOPS_REPORT_MIN_LABELLED")
    report_max_rows: int = Field(50_000, ge=100, validation_alias="MLOPS_REPORT_MAX_ROWS")
    # Labels joined for the live metrics; above it they use the labelled rows of the sample.
    report_max_labelled: int = Field(100_000, ge=100, validation_alias="MLOPS_REPORT_MAX_LABELLED")
    drift_threshold: float = Field(0.3, ge=0, le=1, validation_alias="MLOPS_DRIFT_THRESHOLD")
    reports_base_url: str = Field("http://127.0.0.1:8088", validation_alias="MLOPS_REPORTS_URL")

    stale_after_hours: float = Field(36, gt=0, validation_alias="MLOPS_STALE_AFTER_HOURS")
    retrain_on_drift: bool = Field(False, validation_alias="MLOPS_RETRAIN_ON_DRIFT")
    # Alert delivery (Alertmanager config and the Prefect staleness guard); unset = not sent.
    alert_webhook_url: str | None = Field(None, validation_alias="MLOPS_ALERT_WEBHOOK_URL")
    alert_email_to: str | None = Field(None, validation_alias="MLOPS_ALERT_EMAIL_TO")
    alert_email_from: str = Field("lifecycle@localhost", validation_alias="MLOPS_ALERT_EMAIL_FROM")
    smtp_smarthost: str = Field("localhost:25", validation_alias="MLOPS_SMTP_SMARTHOST")
    smtp_username: str | None = Field(None, validation_alias="MLOPS_SMTP_USERNAME")
    smtp_password: str | None = Field(None, validation_alias="MLOPS_SMTP_PASSWORD")
    # Serving with several workers: prometheus_client's shared-value folder (`mlops serve` sets it).
    prometheus_multiproc_dir: Path | None = Field(None, validation_alias="PROMETHEUS_MULTIPROC_DIR")
    # Scale-out (README "Scale out"). API processes behind nginx in `make up`; one replica's own
    # journal folder (default MLOPS_HOME/spool); days a prediction is kept (unset = forever).
    api_replicas: int = Field(1, ge=1, le=16, validation_alias="MLOPS_API_REPLICAS")
    spool_dir_override: Path | None = Field(None, validation_alias="MLOPS_SPOOL_DIR")
    prediction_ttl_days: int | None = Field(
        None, ge=1, validation_alias="MLOPS_PREDICTION_TTL_DAYS"
    )
    # `make deploy`: the Prefect worker type the deployments run on, and the job variables of the
    # kubernetes / ecs variants (image of a flow run, namespace or cluster, cpu and memory).
    work_pool_type: Literal["process", "kubernetes", "ecs"] = Field(
        "process", validation_alias="LIFECYCLE_WORK_POOL_TYPE"
    )
    flow_image: str = Field("lifecycle/worker:0.1.0", validation_alias="LIFECYCLE_IMAGE")
    flow_namespace: str = Field("lifecycle", validation_alias="LIFECYCLE_NAMESPACE")
    flow_cluster: str = Field("lifecycle", validation_alias="LIFECYCLE_ECS_CLUSTER")
    flow_cpu_millicores: int = Field(1000, ge=100, validation_alias="LIFECYCLE_FLOW_CPU_MILLICORES")
    flow_memory_mib: int = Field(2048, ge=128, validation_alias="LIFECYCLE_FLOW_MEMORY_MIB")
    # Live experiments (README "Shadow and canary", "Train on production labels"): the alias the
    # API also scores every request with (unset = no shadow); % of requests the challenger
    # answers; labelled production rows appended to training (unset = off) and the fewest worth
    # using; paired labels and p-value a promotion needs; whether the report flow may promote /
    # roll back; consecutive out-of-bounds reports before a rollback.
    shadow_alias: str | None = Field(None, validation_alias="MLOPS_SHADOW_ALIAS")
    canary_percent: float = Field(0, ge=0, le=100, validation_alias="MLOPS_CANARY_PERCENT")
    feedback_window: str | None = Field(None, validation_alias="MLOPS_FEEDBACK_WINDOW")
    feedback_min_rows: int = Field(100, ge=1, validation_alias="MLOPS_FEEDBACK_MIN_ROWS")
    live_min_paired: int = Field(200, ge=1, validation_alias="MLOPS_LIVE_MIN_PAIRED")
    live_alpha: float = Field(0.05, gt=0, lt=1, validation_alias="MLOPS_LIVE_ALPHA")
    auto_promote: bool = Field(False, validation_alias="MLOPS_AUTO_PROMOTE")
    auto_rollback: bool = Field(True, validation_alias="MLOPS_AUTO_ROLLBACK")
    rollback_after_windows: int = Field(2, ge=1, validation_alias="MLOPS_ROLLBACK_AFTER_WINDOWS")
    # Alert e-mail and unseen categories (docs: workflows/alert.md, workflows/serve.md): whether
    # Alertmanager demands STARTTLS of the SMTP server (false only for a relay on a trusted
    # network, such as a local MTA on :25); what a category the model never saw gets: `reject`
    # (422, dead letter, batch stops) or `missing` (scored as missing, and the answer says so).
    smtp_require_tls: bool = Field(True, validation_alias="MLOPS_SMTP_REQUIRE_TLS")
    unseen_category: Literal["reject", "missing"] = Field(
        "reject", validation_alias="MLOPS_UNSEEN_CATEGORY"
    )
    # Binary targets: `balanced` weighs positives by the negatives per positive of the training
    # rows (XGBoost's scale_pos_weight), so a rare class is still predicted; `none`: unweighted.
    class_weight: Literal["none", "balanced"] = Field("none", validation_alias="MLOPS_CLASS_WEIGHT")

    @field_validator("home", mode="after")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        # Relative paths are resolved once, so a chdir later (Prefect workers do one) cannot
        # move the state folder.
        return value.expanduser().resolve()

    @computed_field  # type: ignore[prop-decorator]
    @property
    def mlflow_tracking_uri(self) -> str:
        """Tracking + registry URI: sqlite under MLOPS_HOME unless MLFLOW_TRACKING_URI is set."""
        return self.mlflow_tracking_uri_override or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def artifact_location(self) -> str | None:
        """Artifact root for a new experiment; None lets a remote tracking server decide."""
        if self.mlflow_tracking_uri.startswith(("sqlite:", "file:")) or "://" not in (
            self.mlflow_tracking_uri
        ):
            return self.artifacts_dir.as_uri()
        return None

    @property
    def reports_dir(self) -> Path:
        return (self.reports_dir_override or self.home / "reports").expanduser().resolve()

    @property
    def spool_dir(self) -> Path:
        """The prediction journal: MLOPS_SPOOL_DIR (one per replica), else MLOPS_HOME/spool."""
        if self.spool_dir_override is not None:
            return self.spool_dir_override.expanduser().resolve()
        return self.home / "spool"

    def primary_metric(self, task: Task) -> str:
        """The metric that ranks trials and gates promotion for `task`.

        Binary: ROC AUC. A model that predicts the majority class for everyone scores 0.5 on it
        whatever the class balance, and any model that ranks a positive above a negative more
        often than not scores above 0.5; accuracy rates the same majority-class model at the
        share of that class (0.86 under 14 % churn), above most models with skill."""
        if self.primary_metric_override:
            return self.primary_metric_override
        return {"regression": "rmse", "binary": "roc_auc"}.get(task, "accuracy")

    def metric_bounds(self, task: Task) -> tuple[float | None, float | None]:
        """(minimum, maximum) acceptable values of the primary metric: gate and alert bounds.

        For higher-is-better metrics the minimum gates promotion and the maximum flags
        suspected leakage; for lower-is-better metrics (rmse, mae, log_loss) the maximum gates.
        """
        if self.min_metric is not None or self.max_metric is not None:
            return self.min_metric, self.max_metric
        if self.primary_metric(task) in LOWER_IS_BETTER:
            return None, None
        return 0.70, 0.995

    def tolerance(self, task: Task, champion_value: float) -> float:
        """How much worse than the champion a candidate may be and still be promoted."""
        if self.promotion_tolerance is not None:
            return self.promotion_tolerance
        if self.primary_metric(task) in LOWER_IS_BETTER:
            return 0.02 * abs(champion_value)  # 2 % relative: RMSE has the target's units
        return 0.01


_handed_in: list[Settings] = []  # a stack: `using` blocks may nest


@lru_cache(maxsize=1)
def _from_environment() -> Settings:
    return Settings()


def get_settings() -> Settings:
    """The settings in force: those handed in by `using`, else the process-wide ones read once
    from the environment on first use (never at import)."""
    return _handed_in[-1] if _handed_in else _from_environment()


get_settings.cache_clear = _from_environment.cache_clear  # type: ignore[attr-defined]


@contextmanager
def using(settings: Settings) -> Iterator[Settings]:
    """Make `settings` the settings in force in this process for the block (a flow run called
    with settings in hand: CLI, demo, tests), so every step reads the settings it was given."""
    _handed_in.append(settings)
    try:
        yield settings
    finally:
        _handed_in.pop()
