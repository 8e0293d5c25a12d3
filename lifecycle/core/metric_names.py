"""Prometheus metric names: serving, the exporter, alert rules and dashboards all use
exactly these, so a rename is one edit here plus the rule and dashboard files."""

from __future__ import annotations

# -- serving (/metrics of the API) ----------------------------------------------------------------
REQUESTS_TOTAL = "mlops_requests_total"  # counter{endpoint, status}
REQUEST_LATENCY_SECONDS = "mlops_request_latency_seconds"  # histogram{endpoint}
PREDICTIONS_TOTAL = "mlops_predictions_total"  # counter{model_version, label}
MODEL_INFO = "mlops_model_info"  # gauge = 1 {model_name, model_version, alias}
MODEL_LOADED_TIMESTAMP_SECONDS = "mlops_model_loaded_timestamp_seconds"  # gauge{model_name}
MODEL_RELOADS_TOTAL = "mlops_model_reloads_total"  # counter{result}
PREDICTION_LOG_QUEUE = "mlops_prediction_log_queue"  # gauge
PREDICTION_LOG_SPOOLED = "mlops_prediction_log_spooled"  # gauge
# Categories the model never saw, rejected or scored as missing (MLOPS_UNSEEN_CATEGORY);
# the stream consumer counts its records' too.
UNSEEN_CATEGORY_TOTAL = "mlops_unseen_category_total"  # counter{feature}

# -- exporter (registry + reports) ----------------------------------------------------------------
MODEL_LAST_TRAINED_TIMESTAMP_SECONDS = (
    "mlops_model_last_trained_timestamp_seconds"  # {model_name, alias}
)
MODEL_METRIC = "mlops_model_metric"  # {model_name, model_version, metric, dataset}
# The latest report's label-free estimate (dataset="estimated" above is its value): the bounds
# of its 95 % interval, and 1 when its labels fell outside it.
MODEL_METRIC_ESTIMATE_BOUND = "mlops_model_metric_estimate_bound"  # {..., metric, bound}
MODEL_CONCEPT_DRIFT_SUSPECTED = "mlops_model_concept_drift_suspected"  # {model_name}
DATA_DRIFT_SHARE = "mlops_data_drift_share"  # {model_name}
REPORT_LAST_TIMESTAMP_SECONDS = "mlops_report_last_timestamp_seconds"  # {model_name}

# Exporter extras: the version each alias points at (value = version number), and the alert
# thresholds from the settings, exported so the static rule files compare against them.
MODEL_ALIAS_VERSION = "mlops_model_alias_version"  # {model_name, alias}
MODEL_METRIC_THRESHOLD = "mlops_model_metric_threshold"  # {model_name, metric, bound=min|max}
MODEL_STALE_AFTER_SECONDS = "mlops_model_stale_after_seconds"  # {model_name}
DATA_DRIFT_THRESHOLD = "mlops_data_drift_threshold"  # {model_name}
REPORT_WINDOW_SECONDS = "mlops_report_window_seconds"  # {model_name}

# Exporter health, one series per source (`registry`, `reports`).
EXPORTER_SOURCE_UP = "mlops_exporter_source_up"
EXPORTER_SOURCE_READ_SECONDS = "mlops_exporter_source_read_seconds"
EXPORTER_SOURCE_LAST_SUCCESS_TIMESTAMP_SECONDS = (
    "mlops_exporter_source_last_success_timestamp_seconds"
)

# -- stream consumer (/metrics of `mlops stream`) --------------------------------------------------
STREAM_RECORDS_IN_TOTAL = "mlops_stream_records_in_total"  # counter{shard_id}
# Records whose data was the base64 text of JSON (AWS CLI v1's `put-record --data`), accepted.
STREAM_BASE64_RECORDS_TOTAL = "mlops_stream_base64_records_total"  # counter{shard_id}
STREAM_RECORDS_OUT_TOTAL = "mlops_stream_records_out_total"  # counter{model_version}
STREAM_DEAD_LETTERS_TOTAL = "mlops_stream_dead_letters_total"  # counter{reason}
STREAM_BATCH_SECONDS = "mlops_stream_batch_seconds"  # histogram
STREAM_LAG_SECONDS = "mlops_stream_lag_seconds"  # gauge{shard_id}, from MillisBehindLatest
