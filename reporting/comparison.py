"""The live comparison of a report window: each version's live primary metric on its labelled
rows and, for a shadow challenger, the paired test on the rows both models scored
(lifecycle.decisions.experiment holds the statistics; this groups the window's rows).

It reads nothing: the window's live pairs (reporting.window.LivePairs) already hold, for each
labelled row, the answering version and the shadow's score. So the comparison covers the same
rows as the live metric (every label of the window, or past `MLOPS_REPORT_MAX_LABELLED` the
sample's) at no extra read. Before, it joined the labels again on its own: at 1,000,000
predictions, 301,680 `_id` lookups, 38 s of a 46 s report.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lifecycle.core.settings import Settings, Task
from lifecycle.decisions import experiment
from lifecycle.decisions.live_test import LiveExperiment, summary
from lifecycle.model.roc_auc import positive_scores
from reporting.drift import positive_mask
from reporting.window import LivePairs


def compare_pairs(
    pairs: LivePairs | None,
    champion: str | None,
    task: Task,
    metric: str,
    classes: Sequence[Any] = (),
) -> dict[str, Any]:
    """`{"live_versions": {version: LiveMetric as dict}, "paired": PairedTest as dict | None,
    "champion": version, "metric": metric, "sampled": bool}` over the window's live pairs.
    `classes`: the model's classes; a binary model's ROC AUC reads the second's probability."""
    answered: dict[str, _Rows] = defaultdict(_Rows)
    paired_rows: dict[str, _Rows] = defaultdict(_Rows)  # challenger version -> its pairs
    key = str(classes[1]) if task == "binary" and len(classes) == 2 else None
    rows = () if pairs is None else zip(*_columns(pairs, key), strict=True)
    for actual, prediction, version, shadow, score, theirs in rows:
        answered[version].add(actual, prediction, score)
        if not shadow:
            continue
        other = str(shadow["model_version"])
        if version == champion:
            paired_rows[other].add(actual, prediction, score, shadow["prediction"], theirs)
        elif other == champion:  # a canary request answered by the challenger
            paired_rows[version].add(actual, shadow["prediction"], theirs, prediction, score)

    def is_positive(rows: _Rows) -> np.ndarray | None:
        return positive_mask(rows.actual, classes) if key is not None else None

    live = {
        version: experiment.live_metric(
            version, task, metric, r.actual, r.first, r.first_scores, is_positive(r)
        ).__dict__
        for version, r in answered.items()
    }
    paired = None
    if paired_rows and champion is not None:
        challenger, r = max(paired_rows.items(), key=lambda kv: len(kv[1].actual))
        scores = (r.first_scores, r.second_scores)
        y, a, s, pos = r.actual, r.first, r.second, is_positive(r)
        paired = experiment.paired_test(champion, challenger, task, metric, y, a, s, scores, pos)
        paired = paired.to_dict()
        # The shadow's own live metric is on the rows it scored (they were not answered by it).
        shadow_live = experiment.live_metric(challenger, task, metric, y, s, scores[1], pos)
        live.setdefault(challenger, shadow_live.__dict__)
    return {
        "champion": champion,
        "metric": metric,
        "live_versions": live,
        "paired": paired,
        "sampled": bool(pairs is not None and pairs.sampled),
    }


@dataclass
class _Rows:
    """Labelled rows of one version (first) or of a champion (first) and its challenger (second):
    the label, each side's answer and positive-class probability (NaN when not logged)."""

    actual: list = field(default_factory=list)
    first: list = field(default_factory=list)
    first_scores: list = field(default_factory=list)
    second: list = field(default_factory=list)
    second_scores: list = field(default_factory=list)

    def add(self, actual: Any, first: Any, score: float, second: Any = None, other=None) -> None:
        self.actual.append(actual)
        self.first.append(first)
        self.first_scores.append(score)
        self.second.append(second)
        self.second_scores.append(np.nan if other is None else other)


def _columns(pairs: LivePairs, key: str | None) -> tuple:
    """The pairs' columns, with the answer's and the shadow's positive-class probability (NaN
    where none was logged, and everywhere without a positive class)."""
    n = len(pairs)
    logged = [None] * n if pairs.probabilities is None or key is None else pairs.probabilities
    shadowed = [s.get("probabilities") if s and key is not None else None for s in pairs.shadows]
    scores, theirs = positive_scores(logged, key or ""), positive_scores(shadowed, key or "")
    return pairs.actual, pairs.predicted, pairs.versions, pairs.shadows, scores, theirs


def describe(comparison: dict[str, Any]) -> list[str]:
    """Markdown lines for the artifact and `mlops experiment`."""
    lines = []
    for version, m in sorted(comparison.get("live_versions", {}).items()):
        if m["value"] is None:
            continue
        role = " (champion)" if version == comparison.get("champion") else ""
        lines.append(
            f"- v{version}{role}: live {comparison['metric']} {m['value']:.4f} "
            f"[{m['low']:.4f}, {m['high']:.4f}] on {m['rows']} labelled rows"
        )
    if comparison.get("sampled"):
        lines.append("- compared on the labelled rows of the sample (MLOPS_REPORT_MAX_LABELLED)")
    paired = comparison.get("paired")
    if paired:
        lines.append(
            f"- paired v{paired['challenger']} vs v{paired['champion']}: {paired['pairs']} "
            f"pairs, {paired['test']} p={paired['p_value']:.4g} (discordant "
            f"{paired['challenger_wins']} / {paired['champion_wins']})"
        )
    running = comparison.get("sequential")
    if running:
        lines.append(f"- sequential test: {summary(LiveExperiment.from_document(running))}")
    return lines


def page_notes(comparison: dict[str, Any] | None, settings: Settings) -> list[str]:
    """The report page's "Live comparison" paragraphs (markdown): each version's live metric
    with its 95 % interval, the paired test, and how the promotion rule reads this evidence.
    Empty when the window holds one version and no shadow."""
    if not comparison:
        return []
    lines = describe(comparison)
    if len(comparison.get("live_versions", {})) < 2 and not comparison.get("paired"):
        return []
    rows = (
        "the labelled rows of the sample (more labels arrived than `MLOPS_REPORT_MAX_LABELLED`)"
        if comparison.get("sampled")
        else "every labelled row of the window"
    )
    notes = [
        f"Each version's live {comparison['metric']} on {rows} it answered (a shadow: on the "
        "rows it scored), with its 95 % interval:",
        "\n".join(lines),
    ]
    paired = comparison.get("paired")
    if paired:
        notes.append(
            f"Paired on the same labelled requests ({paired['test']} p-value shown for this "
            "window alone). The decision is the sequential test's: the pairs of every window "
            "since the challenger started, promoted when the likelihood ratio for 'better' "
            f"reaches 1/`MLOPS_LIVE_ALPHA` = {1 / settings.live_alpha:g}, stopped when the one "
            "for 'worse' does; looking after every window keeps the false promotion rate at "
            f"most {settings.live_alpha:g}. The decision taken is in this report's JSON "
            "(`experiment.decisions`), the flow's `live-comparison` artifact and "
            "`mlops experiment`."
        )
    else:
        notes.append(
            "No request was scored by both versions (a canary split without a shadow), so the "
            "versions are compared on different rows and no paired test is run."
        )
    return notes
