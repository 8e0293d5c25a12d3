"""The quality gate (the offline A/B): a candidate and the current champion are scored on the same
fresh test split; the candidate becomes `champion` only if it meets the bound and is no worse
than the champion beyond tolerance, otherwise `challenger`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mlflow

from lifecycle import registry
from lifecycle.evaluation import evaluate, is_better_or_equal
from lifecycle.registry import CHALLENGER, CHAMPION
from lifecycle.settings import LOWER_IS_BETTER, Settings, Task, get_settings
from lifecycle.splits import Splits

if TYPE_CHECKING:
    from lifecycle.training import Candidate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateDecision:
    """What the gate decided for a candidate version, and why (one sentence)."""

    promoted: bool
    alias: str
    reason: str
    candidate_value: float
    champion_version: str | None = None
    champion_value: float | None = None


def decide(
    metric: str,
    task: Task,
    candidate_value: float,
    champion_value: float | None,
    settings: Settings,
    champion_version: str | None = None,
) -> GateDecision:
    """The quality gate: meet the bound, and be no worse than the champion beyond tolerance."""
    low, high = settings.metric_bounds(task)
    lower_better = metric in LOWER_IS_BETTER
    bound = high if lower_better else low
    if bound is not None:
        fails = candidate_value > bound if lower_better else candidate_value < bound
        if fails:
            word = "above the maximum" if lower_better else "below the minimum"
            return GateDecision(
                False,
                CHALLENGER,
                f"{metric} {candidate_value:.4f} is {word} {bound:.4f}",
                candidate_value,
                champion_version,
                champion_value,
            )
    if champion_value is None:
        why = (
            "no champion yet"
            if champion_version is None
            else (f"champion v{champion_version} could not be evaluated on this data")
        )
        return GateDecision(
            True,
            CHAMPION,
            f"{why}; {metric} {candidate_value:.4f} meets the bound",
            candidate_value,
            champion_version,
        )
    tolerance = settings.tolerance(task, champion_value)
    if is_better_or_equal(metric, candidate_value, champion_value, tolerance):
        reason = (
            f"{metric} {candidate_value:.4f} vs champion v{champion_version} "
            f"{champion_value:.4f} (tolerance {tolerance:.4f}) on the same test split"
        )
        return GateDecision(
            True, CHAMPION, reason, candidate_value, champion_version, champion_value
        )
    reason = (
        f"{metric} {candidate_value:.4f} is worse than champion v{champion_version} "
        f"{champion_value:.4f} beyond tolerance {tolerance:.4f}"
    )
    return GateDecision(
        False, CHALLENGER, reason, candidate_value, champion_version, champion_value
    )


def apply_decision(version: str, decision: GateDecision, settings: Settings | None = None) -> None:
    """Move aliases for a gated candidate."""
    if decision.promoted:
        registry.promote(version, settings)
    else:
        settings = settings or get_settings()
        registry.client(settings).set_registered_model_alias(
            settings.model_name, CHALLENGER, str(version)
        )


def gate(candidate: Candidate, splits: Splits, settings: Settings) -> GateDecision:
    """Offline A/B: candidate and current champion on the same fresh test split."""
    spec = candidate.predictor.spec
    metric = settings.primary_metric(spec.task)
    champion = registry.version_by_alias(registry.CHAMPION, settings)
    champion_value: float | None = None
    champion_version = str(champion.version) if champion is not None else None
    if champion_version is not None and champion_version != candidate.version:
        try:
            _, champ = registry.load_predictor(champion_version, settings)
            champion_value = evaluate(champ, splits.test).get(metric)
        except Exception as exc:  # any failure means "cannot compare"; the reason is logged
            log.warning("champion v%s cannot score this data: %s", champion_version, exc)
    decision = decide(
        metric,
        spec.task,
        candidate.test_metrics[metric],
        champion_value,
        settings,
        champion_version,
    )
    apply_decision(candidate.version, decision, settings)
    client = registry.client(settings)
    client.set_model_version_tag(
        settings.model_name, candidate.version, registry.TAG_GATE, decision.reason
    )
    with mlflow.start_run(run_id=candidate.run_id):
        mlflow.set_tags({"gate_promoted": str(decision.promoted), "gate_reason": decision.reason})
    return decision
