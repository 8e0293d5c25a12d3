"""Replay a registered version on the prediction log: re-score a window's logged requests and set
the answers beside those of the version that served them (or of another version), on the same
rows. No label is needed for the disagreement and the label-free estimate; where labels arrived,
the paired counts are those of the shadow test (lifecycle.decisions.experiment.paired_test).

The window is read as a report reads it (reporting.window.read_window): up to
`MLOPS_REPORT_MAX_ROWS` rows, the uniform `sample_key` sample past that. Rows the replayed
versions were trained on (the prediction ids their training runs recorded) are dropped first:
a version is never credited for remembering its own training rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from lifecycle.core.errors import LifecycleError
from lifecycle.decisions import experiment
from lifecycle.model.estimate import (
    METHOD,
    Calibration,
    estimate_metrics,
    estimated_metric,
)
from lifecycle.model.predictor import Predictor
from lifecycle.stores.documents import BacktestDocument
from reporting.estimate import CLASSIFICATION_ONLY
from reporting.window import ACTUAL, PREDICTION, WindowData


class BacktestError(LifecycleError):
    """A backtest cannot run (an empty window, a version that cannot score the rows)."""


@dataclass(frozen=True)
class Replayed:
    """One side of a backtest: a version, its predictor (None: the logged answers), and the
    calibration stored with it (None: no label-free estimate for it)."""

    version: str
    predictor: Predictor | None
    calibration: dict[str, Any] | None = None


def backtest_window(
    window: WindowData,
    model_name: str,
    window_label: str,
    challenger: Replayed,
    baseline: Replayed,
    excluded: Iterable[str],
    metric: str,
) -> BacktestDocument:
    """The `backtests` document of `challenger` against `baseline` on the window's rows."""
    t0 = time.perf_counter()
    excluded = set(excluded)
    keep = np.asarray([i not in excluded for i in window.ids], dtype=bool)
    frame = window.frame[keep].reset_index(drop=True)
    spec = challenger.predictor.spec if challenger.predictor is not None else None
    if spec is None:
        raise BacktestError("the replayed version needs a predictor")
    c_labels, c_proba = _score(challenger, frame, window.probabilities, keep)
    b_labels, b_proba = _score(baseline, frame, window.probabilities, keep)
    disagreement = _disagreement(spec.task, c_labels, b_labels)
    actual = frame[ACTUAL].to_numpy(dtype=object)
    labelled = np.asarray([a is not None for a in actual], dtype=bool)
    paired = _paired(baseline, challenger, spec.task, metric, actual, b_labels, c_labels, labelled)
    unlabelled = ~labelled
    estimated = {
        side.version: _estimate(side, spec.classes, proba, labels, unlabelled, metric)
        for side, proba, labels in ((challenger, c_proba, c_labels), (baseline, b_proba, b_labels))
    }
    return BacktestDocument(
        model_name=model_name,
        version=challenger.version,
        against=baseline.version if baseline.predictor is not None else None,
        window_start=window.start,
        window_end=window.end,
        window=window_label,
        rows=window.rows,
        scored=int(keep.sum()),
        sampled=window.sampled,
        sample_fraction=window.sample_fraction,
        excluded_training_rows=int((~keep).sum()),
        disagreement=disagreement,
        paired=paired,
        estimated=estimated,
        created_at=datetime.now(UTC),
        seconds=time.perf_counter() - t0,
    )


def _score(
    side: Replayed, frame: Any, logged: np.ndarray | None, keep: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """(answers, class probabilities or None): re-scored, or as logged."""
    if side.predictor is not None:
        labels, proba = side.predictor.predict_frame(frame)
        return np.asarray(labels, dtype=object), proba
    answers = frame[PREDICTION].to_numpy(dtype=object)
    return answers, None if logged is None else _logged_matrix(logged[keep], side)


def _logged_matrix(rows: np.ndarray, side: Replayed) -> np.ndarray | None:
    """The logged probabilities as a matrix in the calibration's class order (None when a row
    lacks them or the version stored no calibration)."""
    if side.calibration is None:
        return None
    keys = [str(c) for c in side.calibration["classes"]]
    if not all(isinstance(r, dict) and all(k in r for k in keys) for r in rows):
        return None
    return np.asarray([[float(r[k]) for k in keys] for r in rows], dtype=float).reshape(
        -1, len(keys)
    )


def _disagreement(task: str, challenger: np.ndarray, baseline: np.ndarray) -> float:
    """Share of rows answered differently (classification), mean |difference| (regression)."""
    if len(challenger) == 0:
        return 0.0
    if task == "regression":
        return float(np.mean(np.abs(challenger.astype(float) - baseline.astype(float))))
    return float(np.mean([str(a) != str(b) for a, b in zip(challenger, baseline, strict=True)]))


def _paired(
    baseline: Replayed,
    challenger: Replayed,
    task: Any,
    metric: str,
    actual: np.ndarray,
    baseline_labels: np.ndarray,
    challenger_labels: np.ndarray,
    labelled: np.ndarray,
) -> dict[str, Any] | None:
    """The shadow test's figures on the labelled rows: each side's metric, wins (challenger
    right, baseline wrong; regression: smaller error), losses, ties, and the p-value."""
    if not labelled.any():
        return None
    y = actual[labelled]
    if task != "regression":
        # Labels come back from MongoDB as stored; answers as the model's classes: compare as text.
        y = np.asarray([str(v) for v in y], dtype=object)
        baseline_labels = np.asarray([str(v) for v in baseline_labels], dtype=object)
        challenger_labels = np.asarray([str(v) for v in challenger_labels], dtype=object)
    test = experiment.paired_test(
        baseline.version,
        challenger.version,
        task,
        metric,
        y,
        baseline_labels[labelled],
        challenger_labels[labelled],
    )
    out = test.to_dict()
    out.update(
        wins=test.challenger_wins,
        losses=test.champion_wins,
        ties=test.pairs - test.challenger_wins - test.champion_wins,
        metric=metric,
    )
    return out


def _estimate(
    side: Replayed,
    classes: tuple[Any, ...],
    proba: np.ndarray | None,
    labels: np.ndarray,
    rows: np.ndarray,
    metric: str,
) -> dict[str, Any]:
    """One side's label-free estimate on the unlabelled rows, or the reason there is none."""
    if not classes:
        return {"note": CLASSIFICATION_ONLY}
    if side.calibration is None or proba is None:
        return {"note": f"estimate: version {side.version} has no calibration"}
    if not rows.any():
        return {"note": "estimate: every row is labelled"}
    calibration = Calibration.from_dict(side.calibration)
    index = {str(c): i for i, c in enumerate(calibration.classes)}
    predicted = np.asarray([index[str(v)] for v in labels[rows]], dtype=int)
    name = estimated_metric(metric, len(calibration.classes))
    scores = proba[rows][:, 1] if name == "roc_auc" else None  # the served P(positive) ranks
    intervals = estimate_metrics(
        calibration.apply(proba[rows]), predicted, calibration.rows, scores=scores
    )
    name = name if name in intervals else "accuracy"  # AUC: the rows expect one class
    interval = intervals[name]
    return {
        "metric": name,
        "value": interval.value,
        "low": interval.low,
        "high": interval.high,
        "rows": int(rows.sum()),
        "method": METHOD,
    }


def describe_backtest(doc: BacktestDocument) -> list[str]:
    """Markdown lines: the summary the CLI prints and the flow's artifact shows."""
    against = f"v{doc['against']}" if doc["against"] else "the logged answers"
    sample = (
        f" (the uniform `sample_key` sample, p = {doc['sample_fraction']:.4f}, as reports use)"
        if doc["sampled"]
        else ""
    )
    lines = [
        f"**Backtest v{doc['version']} against {against}**, window {doc['window']} ending "
        f"{doc['window_end']:%Y-%m-%d %H:%M} UTC: {doc['scored']:,} of {doc['rows']:,} "
        f"predictions re-scored{sample}; {doc['excluded_training_rows']:,} rows left out "
        "(training rows of the versions replayed).",
        f"- disagreement: {doc['disagreement']:.4f}",
    ]
    paired = doc["paired"]
    if paired:
        lines.append(
            f"- paired on {paired['pairs']:,} labelled rows: {paired['metric']} "
            f"v{paired['challenger']} {_fmt(paired['challenger_metric'])} vs "
            f"v{paired['champion']} {_fmt(paired['champion_metric'])}; wins {paired['wins']}, "
            f"losses {paired['losses']}, ties {paired['ties']} ({paired['test']} "
            f"p={paired['p_value']:.4g})"
        )
    else:
        lines.append("- no labelled rows: no paired comparison")
    for version, est in doc["estimated"].items():
        if "value" in est:
            lines.append(
                f"- v{version} estimated {est['metric']} {est['value']:.4f} "
                f"[{est['low']:.4f}, {est['high']:.4f}] on {est['rows']:,} unlabelled rows"
            )
        else:
            lines.append(f"- v{version}: {est['note']}")
    return lines


def backtest_line(doc: BacktestDocument) -> str:
    """The backtest in one compact line (the gate's reason after a retrain): window, rows
    scored and left out as training rows, disagreement, paired counts and p on the labelled
    rows, and each version's label-free estimate."""
    sample = f" (sample p={doc['sample_fraction']:.3g})" if doc["sampled"] else ""
    parts = [
        f"{doc['scored']:,} of {doc['rows']:,} rows scored{sample}, "
        f"{doc['excluded_training_rows']:,} excluded as training rows",
        f"disagreement {doc['disagreement']:.4f}",
    ]
    paired = doc["paired"]
    if paired:
        parts.append(
            f"on {paired['pairs']:,} labelled rows wins {paired['wins']}, losses "
            f"{paired['losses']}, ties {paired['ties']} "
            f"({paired['test']} p={paired['p_value']:.3g})"
        )
    else:
        parts.append("no labelled rows")
    estimates = [
        f"v{version} {est['value']:.4f}" if "value" in est else f"v{version} n/a"
        for version, est in doc["estimated"].items()
    ]
    named = next((e["metric"] for e in doc["estimated"].values() if "metric" in e), "metric")
    parts.append(f"estimated {named} {' vs '.join(estimates)}")
    return f"backtest on the last {doc['window']}: " + "; ".join(parts)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
