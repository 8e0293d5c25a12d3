"""Performance without labels: confidence-based performance estimation (CBPE) for classifiers.

A model whose probabilities are calibrated says, row by row, how likely its answer is right:
a row predicted class j with calibrated probabilities q adds q to column j of the *expected*
confusion matrix (rows: actual class, columns: predicted class). Accuracy and F1 follow from
that matrix as they follow from a counted one. This holds under covariate drift (the inputs
move, P(label | input) does not); when the realized metric later falls outside the estimate's
interval, that assumption failed: concept drift is suspected.

The calibration is fitted at training time (`fit_calibration`, isotonic regression one class
against the rest) on rows the registered model never trained on, and stored with the version.

Interval (95 %): each row is right with its own probability, so the number of right answers is
Poisson-binomial with variance Σ q(1 - q); the calibration map was itself estimated from
`calibration.rows` rows, which adds about acc(1 - acc) / rows. Accuracy uses the normal
approximation of both; F1 uses seeded draws of the rows' classes from their calibrated
probabilities, widened by the same calibration term.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

ESTIMABLE = ("accuracy", "f1")
Z95 = 1.959964
DRAWS = 400
METHOD = "cbpe-isotonic"


class CalibrationError(ValueError):
    """A calibration cannot be fitted or applied (too few rows, wrong number of classes)."""


@dataclass(frozen=True)
class Calibration:
    """Isotonic maps raw → calibrated probability: one for a binary model (the positive class),
    one per class for a multiclass model (then rows are renormalised). `rows`: how many rows
    it was fitted on; `split`: which ones."""

    classes: tuple[Any, ...]
    curves: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...]
    rows: int
    split: str = "test"
    method: str = "isotonic"

    def apply(self, proba: np.ndarray) -> np.ndarray:
        """Raw class probabilities (rows x classes) → calibrated ones, rows summing to 1."""
        proba = np.asarray(proba, dtype=float)
        if proba.ndim != 2 or proba.shape[1] != len(self.classes):
            raise CalibrationError(
                f"expected probabilities for {len(self.classes)} classes, got shape {proba.shape}"
            )
        if len(self.classes) == 2:
            x, y = self.curves[0]
            positive = np.interp(proba[:, 1], x, y)
            return np.column_stack([1.0 - positive, positive])
        out = np.column_stack(
            [np.interp(proba[:, k], x, y) for k, (x, y) in enumerate(self.curves)]
        )
        total = out.sum(axis=1, keepdims=True)
        # A row every map sends to 0 keeps its raw probabilities rather than dividing by 0.
        return np.where(total > 0, out / np.where(total > 0, total, 1.0), proba)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        curves = tuple((tuple(x), tuple(y)) for x, y in data["curves"])
        return cls(
            tuple(data["classes"]),
            curves,
            int(data["rows"]),
            data.get("split", "test"),
            data.get("method", "isotonic"),
        )


def fit_calibration(
    proba: np.ndarray, actual: Sequence[Any], classes: Sequence[Any], split: str = "test"
) -> Calibration:
    """Isotonic calibration of `proba` (rows x classes) against the true labels `actual`."""
    from sklearn.isotonic import IsotonicRegression

    proba = np.asarray(proba, dtype=float)
    index = {c: i for i, c in enumerate(classes)}
    truth = np.asarray([index.get(a, -1) for a in actual])
    if len(truth) < 20 or (truth < 0).any():
        raise CalibrationError(f"need at least 20 rows with known classes, got {len(truth)}")
    columns = [1] if len(classes) == 2 else range(len(classes))
    curves = []
    for k in columns:
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        iso.fit(proba[:, k], (truth == k).astype(float))
        curves.append((tuple(map(float, iso.X_thresholds_)), tuple(map(float, iso.y_thresholds_))))
    return Calibration(tuple(classes), tuple(curves), len(truth), split)


def expected_confusion(calibrated: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """classes x classes: [actual, predicted] = Σ over rows predicted `predicted` of q[actual]."""
    k = calibrated.shape[1]
    onehot = np.eye(k)[predicted]  # rows x classes
    return calibrated.T @ onehot


def metric_from_confusion(confusion: np.ndarray, metric: str) -> float:
    """Accuracy, or F1 (the positive class for binary, macro for multiclass), of a confusion
    matrix whose cells may be expected (fractional) counts."""
    total = confusion.sum()
    if metric == "accuracy":
        return float(np.trace(confusion) / total) if total else float("nan")
    diagonal = np.diag(confusion)
    denominator = confusion.sum(axis=0) + confusion.sum(axis=1)
    f1 = np.divide(2 * diagonal, denominator, out=np.zeros_like(diagonal), where=denominator > 0)
    return float(f1[1]) if len(diagonal) == 2 else float(f1.mean())


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


def estimate_metrics(
    calibrated: np.ndarray, predicted: np.ndarray, calibration_rows: int, seed: int = 0
) -> dict[str, Interval]:
    """Estimated accuracy and F1 of rows with calibrated probabilities `calibrated` (rows x
    classes) and predicted class indices `predicted`, each with its 95 % interval."""
    calibrated = np.asarray(calibrated, dtype=float)
    predicted = np.asarray(predicted, dtype=int)
    n = len(predicted)
    if n == 0:
        raise CalibrationError("no rows to estimate on")
    confusion = expected_confusion(calibrated, predicted)
    right = calibrated[np.arange(n), predicted]
    accuracy = float(right.mean())
    extra = accuracy * (1 - accuracy) / max(calibration_rows, 1)  # the map's own error
    spread = Z95 * np.sqrt(float((right * (1 - right)).sum()) / n**2 + extra)
    out = {
        "accuracy": Interval(
            accuracy, max(0.0, float(accuracy - spread)), min(1.0, float(accuracy + spread))
        )
    }
    f1 = metric_from_confusion(confusion, "f1")
    draws = _drawn_f1(calibrated, predicted, seed)
    widen = Z95 * np.sqrt(f1 * (1 - f1) / max(calibration_rows, 1))
    low, high = np.quantile(draws, [0.025, 0.975])
    half_low, half_high = f1 - low, high - f1
    out["f1"] = Interval(
        f1,
        max(0.0, f1 - float(np.hypot(half_low, widen))),
        min(1.0, f1 + float(np.hypot(half_high, widen))),
    )
    return out


def _drawn_f1(calibrated: np.ndarray, predicted: np.ndarray, seed: int) -> np.ndarray:
    """F1 of DRAWS outcomes, each row's actual class drawn from its calibrated probabilities
    (25 draws at a time, each draw's confusion matrix counted in one bincount)."""
    rng = np.random.default_rng(seed)
    k = calibrated.shape[1]
    cumulative = np.cumsum(calibrated, axis=1)[:, :-1]  # the last class takes the rest
    values = []
    for start in range(0, DRAWS, 25):
        count = min(25, DRAWS - start)
        u = rng.random((count, len(predicted), 1))
        actual = (u >= cumulative[None, :, :]).sum(axis=2)  # draws x rows
        cells = (np.arange(count)[:, None] * k + actual) * k + predicted[None, :]
        confusions = np.bincount(cells.ravel(), minlength=count * k * k).reshape(count, k, k)
        values += [metric_from_confusion(c.astype(float), "f1") for c in confusions]
    return np.asarray(values)


def estimated_metric(primary: str) -> str:
    """The metric an estimate reports: the primary metric when it is estimable, else accuracy."""
    return primary if primary in ESTIMABLE else "accuracy"


def outside(interval: Mapping[str, Any], realized: float) -> bool:
    """Whether a realized value falls outside an estimate's [low, high]."""
    return bool(realized < interval["low"] or realized > interval["high"])
