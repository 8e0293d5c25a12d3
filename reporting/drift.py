"""Evidently reports over a window: data drift + data summary against the reference, model quality
over the labelled rows, and the live metric computed from the labels themselves."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lifecycle.model.evaluation import compute_metrics
from lifecycle.model.predictor import FeatureSpec
from lifecycle.stores.documents import ColumnDrift

PREDICTION = "prediction"


@dataclass
class DriftContent:
    """What a built report holds: its HTML and the figures the summary keeps."""

    html: str
    drift_share: float
    drifted_columns: list[str]
    column_drift: dict[str, ColumnDrift]
    prediction_drift: ColumnDrift | None
    quality: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def label_keys(values: Any) -> np.ndarray:
    """Class labels as comparable strings: 1, 1.0, "1" and True/1 all become "1".

    Labels arrive as JSON from clients (feedback) and as the model's classes (predictions), so
    the same class can come in as an int, a float or a string.
    """
    out = []
    for value in values:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            out.append(None)
            continue
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        out.append(str(value))
    return np.asarray(out, dtype=object)


def positive_mask(actual: Any, classes: Any) -> np.ndarray:
    """Which labels are a binary model's positive class (its second), compared as label keys."""
    return label_keys(actual) == label_keys([classes[1]])[0]


def live_metrics(spec: FeatureSpec, actual: Any, predicted: Any) -> dict[str, float]:
    """Quality of the served predictions against the labels that arrived (no probabilities,
    so accuracy and F1 for classifiers, RMSE / MAE / R² for regression)."""
    if spec.task == "regression":
        y_true = pd.to_numeric(pd.Series(actual), errors="coerce").to_numpy(float)
        y_pred = pd.to_numeric(pd.Series(predicted), errors="coerce").to_numpy(float)
        ok = ~(np.isnan(y_true) | np.isnan(y_pred))
        return compute_metrics("regression", y_true[ok], y_pred[ok])
    classes = [str(k) for k in label_keys(spec.classes)]
    return compute_metrics(spec.task, label_keys(actual), label_keys(predicted), None, classes)


def typed_frame(frame: pd.DataFrame, spec: FeatureSpec, with_target: bool) -> pd.DataFrame:
    """Columns in spec order with one dtype each: numbers as float, categories and class labels
    as strings (Evidently needs the same dtype on both sides of a comparison)."""
    out: dict[str, Any] = {}
    for feat in spec.features:
        col = frame[feat.name] if feat.name in frame.columns else pd.Series(np.nan, frame.index)
        if feat.kind == "categorical" and isinstance(col.dtype, pd.CategoricalDtype):
            # Keys per category, not per row: the window's frame keeps categoricals.
            keys = dict(zip(col.cat.categories, label_keys(col.cat.categories), strict=True))
            out[feat.name] = pd.Series(col.map(keys).astype(object), index=frame.index)
        elif feat.kind == "categorical":
            out[feat.name] = pd.Series(label_keys(col), index=frame.index, dtype=object)
        else:
            out[feat.name] = pd.to_numeric(col, errors="coerce").astype(float)
    columns = [PREDICTION, spec.target] if with_target else [PREDICTION]
    for name in columns:
        if spec.is_classifier:
            out[name] = pd.Series(label_keys(frame[name]), index=frame.index, dtype=object)
        else:
            out[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    return pd.DataFrame(out, index=frame.index).reset_index(drop=True)


def build_drift_report(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    spec: FeatureSpec,
    labelled: pd.DataFrame | None = None,
    notes: list[str] | None = None,
    drift_threshold: float = 0.5,
    reference_typed: bool = False,
    comparison_notes: list[str] | None = None,
) -> DriftContent:
    """Evidently data drift + data summary (all rows) and, when `labelled` is given, the
    classification or regression quality preset over those rows, as one self-contained page.

    `current` holds the features and `prediction`; `labelled` and `reference` also the target.
    `drift_threshold` is the share of drifted columns above which the page calls the dataset
    drifted (the same threshold that raises the drift event). `reference_typed`: the reference
    is already in `typed_frame`'s shape (the per-version cache), so only the current rows are
    typed here. `comparison_notes`: the "Live comparison" section (markdown paragraphs).
    """
    import evidently.presets  # noqa: F401  (imported before the clock: it times the reports)

    t0 = time.perf_counter()
    features = spec.names
    ref = reference if reference_typed else typed_frame(reference, spec, with_target=True)
    drift_snapshot = _drift_snapshot(
        typed_frame(current, spec, with_target=False), ref, spec, drift_threshold
    )
    column_drift, share = _drift_results(drift_snapshot, features)
    prediction_drift = column_drift.pop(PREDICTION, None)
    quality_snapshot = None
    if labelled is not None and len(labelled):
        quality_snapshot = _quality_snapshot(typed_frame(labelled, spec, True), ref, spec)
    return DriftContent(
        html=_page(
            notes,
            drift_snapshot,
            quality_snapshot,
            0 if labelled is None else len(labelled),
            comparison_notes,
        ),
        drift_share=share,
        drifted_columns=[c for c in features if c in column_drift and column_drift[c]["drifted"]],
        column_drift=column_drift,
        prediction_drift=prediction_drift,
        quality={} if quality_snapshot is None else _single_values(quality_snapshot),
        seconds=time.perf_counter() - t0,
    )


def _drift_snapshot(
    current: pd.DataFrame, reference: pd.DataFrame, spec: FeatureSpec, drift_threshold: float
) -> Any:
    """Data drift per feature, drift of the prediction, and the data summary, in one run."""
    from evidently import Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    report = Report(
        [
            DataDriftPreset(columns=spec.names, drift_share=drift_threshold),
            ValueDrift(column=PREDICTION),
            DataSummaryPreset(),
        ],
        include_tests=True,  # the per-column drift verdicts come back as tests
    )
    return report.run(
        _dataset(current, spec, labelled=False),
        _dataset(reference.drop(columns=[spec.target]), spec, labelled=False),
    )


def _page(
    notes: list[str] | None,
    drift: Any,
    quality: Any | None,
    labelled_rows: int,
    comparison: list[str] | None = None,
) -> str:
    """One dashboard: the notes, the live comparison, the drift run's widgets, the quality
    run's, then every test.

    Workaround for evidently 0.7.23: a Snapshot renders only itself (`get_html_str`,
    `save_html`), and the widgets it rendered are kept in the private `Snapshot._widgets`, with
    no public getter. The two runs cannot be one (the quality run compares only the labelled
    rows), so their widgets are read from `_widgets` and laid out with Evidently's own
    renderer. Check this attribute when lifting the `evidently<0.8` pin.
    """
    from evidently.core.metric_types import metric_tests_widget, render_widgets
    from evidently.core.report import metric_tests_stats
    from evidently.legacy.renderers.html_widgets import group_widget, text_widget

    sections = []
    if notes:
        sections.append(text_widget(title="About this report", text="\n\n".join(notes)))
    if comparison:
        sections.append(text_widget(title="Live comparison", text="\n\n".join(comparison)))
    sections.append(group_widget(title="Data drift and summary", widgets=drift._widgets))
    tests = list(drift.tests_results)
    if quality is not None:
        title = f"Model quality on {labelled_rows:,} labelled rows"
        sections.append(group_widget(title=title, widgets=quality._widgets))
        tests += list(quality.tests_results)
    if tests:
        sections += [metric_tests_stats(tests), metric_tests_widget(tests)]
    return render_widgets(sections, as_iframe=False)


def _dataset(frame: pd.DataFrame, spec: FeatureSpec, labelled: bool) -> Any:
    """An Evidently Dataset with every column's kind declared (nothing left to guessing)."""
    from evidently import (
        BinaryClassification,
        DataDefinition,
        Dataset,
        MulticlassClassification,
        Regression,
    )

    numeric = [f.name for f in spec.features if f.kind != "categorical"]
    categorical = [f.name for f in spec.features if f.kind == "categorical"]
    numeric = [c for c in numeric if c in frame.columns]
    categorical = [c for c in categorical if c in frame.columns]
    kwargs: dict[str, Any] = {}
    outputs = [PREDICTION, spec.target] if spec.target in frame.columns else [PREDICTION]
    if spec.is_classifier:
        categorical += outputs
    else:
        numeric += outputs
    if labelled and spec.task == "binary":
        positive = str(label_keys(spec.classes[-1:])[0])
        kwargs["classification"] = [
            BinaryClassification(
                target=spec.target, prediction_labels=PREDICTION, pos_label=positive
            )
        ]
    elif labelled and spec.task == "multiclass":
        kwargs["classification"] = [
            MulticlassClassification(target=spec.target, prediction_labels=PREDICTION)
        ]
    elif labelled:
        kwargs["regression"] = [Regression(target=spec.target, prediction=PREDICTION)]
    definition = DataDefinition(
        numerical_columns=numeric, categorical_columns=categorical, **kwargs
    )
    return Dataset.from_pandas(frame, data_definition=definition)


def _quality_snapshot(labelled: pd.DataFrame, reference: pd.DataFrame, spec: FeatureSpec) -> Any:
    from evidently import Report
    from evidently.presets import ClassificationPreset, RegressionPreset

    preset = RegressionPreset() if spec.task == "regression" else ClassificationPreset()
    columns = [PREDICTION, spec.target]
    return Report([preset], include_tests=True).run(
        _dataset(labelled[columns], spec, labelled=True),
        _dataset(reference[columns], spec, labelled=True),
    )


def _drift_results(snapshot: Any, features: list[str]) -> tuple[dict[str, ColumnDrift], float]:
    """Per-column drift score, method, threshold and verdict; the share of drifted features."""
    result = snapshot.dict()
    columns: dict[str, ColumnDrift] = {}
    share: float | None = None
    for metric in result["metrics"]:
        config = metric.get("config", {})
        kind = config.get("type", "")
        if kind.endswith(":ValueDrift"):
            columns[config["column"]] = {
                "score": _float(metric.get("value")),
                "method": config.get("method"),
                "threshold": _float(config.get("threshold")),
                "drifted": False,
            }
        elif kind.endswith(":DriftedColumnsCount"):
            share = _float((metric.get("value") or {}).get("share"))
    for test in result["tests"]:
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type", "").endswith(":ValueDrift") and params.get("column") in columns:
            columns[params["column"]]["drifted"] = test.get("status") == "FAIL"
    if share is None:  # Evidently always reports it; computed here only as a safety net
        share = sum(columns[c]["drifted"] for c in features if c in columns) / max(len(features), 1)
    return columns, share


def _single_values(snapshot: Any) -> dict[str, float]:
    """The quality preset's single-number metrics, keyed by their short names."""
    out: dict[str, float] = {}
    for metric in snapshot.dict()["metrics"]:
        value = metric.get("value")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            name = metric.get("metric_name", "").split("(", 1)[0]
            if name and name not in out:
                out[name] = float(value)
    return out


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out
