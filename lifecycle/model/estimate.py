"""Performance without labels: confidence-based performance estimation (CBPE) for classifiers.

A model whose probabilities are calibrated says, row by row, how likely its answer is right:
a row predicted class j with calibrated probabilities q adds q to column j of the *expected*
confusion matrix (rows: actual class, columns: predicted class). Accuracy and F1 follow from
that matrix as they follow from a counted one. This holds under covariate drift (the inputs
move, P(label | input) does not); when the realized metric later falls outside the estimate's
interval, that assumption failed: concept drift is suspected.

The calibration is fitted at training time (`fit_calibration`, isotonic regression one class
against the rest) on rows the registered model never trained on, and stored with the version.

ROC AUC (binary models) needs no threshold, so no confusion matrix: ranked by the raw score the
model served, each row counts q of an expected positive and 1 - q of an expected negative, and
the estimate is the area under the ROC curve those expected counts trace, as NannyML's CBPE
estimates it. A multiclass model gets no AUC estimate (see `estimate_metrics`).

Interval (95 %): each row is right with its own probability, so the number of right answers is
Poisson-binomial with variance Σ q(1 - q); the calibration map was itself estimated from
`calibration.rows` rows, which adds about acc(1 - acc) / rows. Accuracy uses the normal
approximation of both; F1 and ROC AUC use seeded draws of the rows' classes from their
calibrated probabilities, widened by their own sampling variance on `calibration.rows` rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

ESTIMABLE = ("accuracy", "f1", "roc_auc")
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
    calibrated: np.ndarray,
    predicted: np.ndarray,
    calibration_rows: int,
    seed: int = 0,
    scores: np.ndarray | None = None,
) -> dict[str, Interval]:
    """Estimated accuracy and F1 of rows with calibrated probabilities `calibrated` (rows x
    classes) and predicted class indices `predicted`, each with its 95 % interval; ROC AUC too
    for a binary model given `scores`, the raw positive-class probabilities it served (left out
    when the rows expect a single class, where AUC is undefined)."""
    calibrated = np.asarray(calibrated, dtype=float)
    predicted = np.asarray(predicted, dtype=int)
    n = len(predicted)
    if n == 0:
        raise CalibrationError("no rows to estimate on")
    right = calibrated[np.arange(n), predicted]
    accuracy = float(right.mean())
    extra = accuracy * (1 - accuracy) / max(calibration_rows, 1)  # the map's own error
    spread = Z95 * np.sqrt(float((right * (1 - right)).sum()) / n**2 + extra)
    out = {
        "accuracy": Interval(
            accuracy, max(0.0, float(accuracy - spread)), min(1.0, float(accuracy + spread))
        )
    }
    # Multiclass: no AUC. The realized one is a one-vs-rest macro average (model.evaluation),
    # one expected curve per class ranked by that class's raw probability against labels the
    # renormalised calibration couples across classes; only the binary default became ROC AUC,
    # so a multiclass roc_auc primary is estimated as accuracy (`estimated_metric`).
    raw = (
        np.asarray(scores, dtype=float) if calibrated.shape[1] == 2 and scores is not None else None
    )
    if raw is not None and len(raw) != n:
        raise CalibrationError(f"{len(raw)} scores for {n} rows")
    ranks = None if raw is None else _midranks(raw)
    f1_draws, auc_draws = _drawn(calibrated, predicted, seed, ranks)
    f1 = metric_from_confusion(expected_confusion(calibrated, predicted), "f1")
    out["f1"] = _widened(f1, f1_draws, Z95 * np.sqrt(f1 * (1 - f1) / max(calibration_rows, 1)))
    if raw is not None:
        auc = expected_roc_auc(raw, calibrated[:, 1])
        if not np.isnan(auc):
            prevalence = float(calibrated[:, 1].mean())
            widen = Z95 * _hanley_mcneil_se(auc, calibration_rows, prevalence)
            out["roc_auc"] = _widened(auc, auc_draws, widen)
    return out


def expected_roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve expected from rows ranked by `scores` (the raw probabilities
    the model served) whose labels are positive with probability `positive` (calibrated).

    CBPE's ROC AUC (NannyML, "Confidence-based Performance Estimation",
    https://nannyml.readthedocs.io/en/stable/how_it_works/performance_estimation.html): at
    each threshold the expected true positives are the cumulative sum of q down the ranking,
    the expected false positives that of 1 - q; TPR and FPR divide them by their totals. Rows
    with the same score form one step of the curve (one threshold), joined by a straight line,
    as scikit-learn's `roc_auc_score` treats tied scores, so 0/1 probabilities give exactly the
    realized AUC. NaN when the rows expect no positive or no negative.

    NannyML ranks by the calibrated probability itself; here the ranking is the raw score's,
    the one the realized AUC is computed on, since an isotonic map ties rows the raw score
    tells apart. Like NannyML's, this is the area under the expected curve, not the expected
    area: they differ by O(1/n) (a row's own q(1 - q) counts as half a pair)."""
    order = np.argsort(-scores, kind="stable")
    ranked, q = scores[order], positive[order]
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # end of each tie group
    tp = np.r_[0.0, np.cumsum(q)[last]]
    fp = np.r_[0.0, np.cumsum(1.0 - q)[last]]
    if tp[-1] <= 0 or fp[-1] <= 0:
        return float("nan")
    area = float(np.sum(np.diff(fp) * (tp[1:] + tp[:-1])) / 2)
    return area / float(tp[-1] * fp[-1])


def _hanley_mcneil_se(auc: float, rows: int, prevalence: float) -> float:
    """Standard error of an AUC measured on `rows` labelled rows, `prevalence` of them positive
    (Hanley & McNeil 1982, Radiology 143(1):29-36, eq. 2).

    The calibration map's own error, read as the sampling error of the metric on the rows the
    map was fitted on, as F1 reads it with f1(1 - f1)/rows. A binomial term is the wrong shape
    for AUC, a mean over positive-negative pairs whose variance depends on both class counts;
    Hanley & McNeil's closed form is that variance, with the counts split by the estimated
    prevalence (the calibration rows' own split is not stored)."""
    positives = max(rows * prevalence, 1.0)
    negatives = max(rows * (1 - prevalence), 1.0)
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / (positives * negatives)
    return float(np.sqrt(max(variance, 0.0)))


def _widened(value: float, draws: np.ndarray, widen: float) -> Interval:
    """`value` with the 2.5/97.5 % quantiles of its draws, each side widened by `widen` in
    quadrature (the calibration map's error); draws where the metric is undefined are skipped."""
    draws = draws[~np.isnan(draws)]
    low, high = np.quantile(draws, [0.025, 0.975]) if len(draws) else (value, value)
    return Interval(
        value,
        max(0.0, value - float(np.hypot(value - low, widen))),
        min(1.0, value + float(np.hypot(high - value, widen))),
    )


def _midranks(scores: np.ndarray) -> np.ndarray:
    """1-based ranks of `scores`, ascending, tied scores sharing the mean of their ranks."""
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    return (upper - (counts - 1) / 2.0)[inverse]


def _drawn(
    calibrated: np.ndarray, predicted: np.ndarray, seed: int, ranks: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """F1 of DRAWS outcomes, each row's actual class drawn from its calibrated probabilities
    (25 draws at a time, each draw's confusion matrix counted in one bincount), and, given the
    raw scores' mid-ranks, ROC AUC of the same draws (NaN where a draw has one class only)."""
    rng = np.random.default_rng(seed)
    k = calibrated.shape[1]
    cumulative = np.cumsum(calibrated, axis=1)[:, :-1]  # the last class takes the rest
    f1s: list[float] = []
    aucs: list[np.ndarray] = []
    for start in range(0, DRAWS, 25):
        count = min(25, DRAWS - start)
        u = rng.random((count, len(predicted), 1))
        if k == 2:  # the same comparison, without summing a bool axis of length 1 (slow)
            actual = (u[:, :, 0] >= cumulative[None, :, 0]).astype(np.int64)
        else:
            actual = (u >= cumulative[None, :, :]).sum(axis=2)  # draws x rows
        cells = (np.arange(count)[:, None] * k + actual) * k + predicted[None, :]
        confusions = np.bincount(cells.ravel(), minlength=count * k * k).reshape(count, k, k)
        f1s += [metric_from_confusion(c.astype(float), "f1") for c in confusions]
        if ranks is not None:
            aucs.append(_rank_auc(actual == 1, ranks))
    return np.asarray(f1s), np.concatenate(aucs) if aucs else np.zeros(0)


def _rank_auc(positive: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of `positive` (draws x rows, the drawn labels) against the scores
    whose mid-ranks are `ranks`: Mann-Whitney U / (positives x negatives), which with mid-ranks
    counts a tied positive-negative pair as half, as `roc_auc_score` does."""
    # einsum, not `@`: a matrix product goes through BLAS, whose threads contend with other
    # work on a busy 2-core machine (the whole estimate took 0.4 s instead of 0.2 s at 50,000
    # rows); einsum's own loop does not.
    rank_sums = np.einsum("ij,j->i", positive.astype(float), ranks)
    positives = np.count_nonzero(positive, axis=1).astype(float)
    negatives = positive.shape[1] - positives
    u = rank_sums - positives * (positives + 1) / 2
    pairs = positives * negatives
    return np.divide(u, pairs, out=np.full_like(u, np.nan), where=pairs > 0)


def estimated_metric(primary: str, classes: int = 2) -> str:
    """The metric an estimate reports: the primary metric when it is estimable for a model of
    that many `classes` (ROC AUC for binary ones only), else accuracy."""
    if primary == "roc_auc" and classes != 2:
        return "accuracy"
    return primary if primary in ESTIMABLE else "accuracy"


def outside(interval: Mapping[str, Any], realized: float) -> bool:
    """Whether a realized value falls outside an estimate's [low, high]."""
    return bool(realized < interval["low"] or realized > interval["high"])
