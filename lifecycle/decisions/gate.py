"""The quality gate (the offline A/B): a candidate and the current champion are scored on the same
fresh test split; the candidate becomes `champion` only if it meets the bound and is no worse
than the champion beyond tolerance, otherwise `challenger`.

When labelled production rows exist (lifecycle.data.feedback), the most recent of them are held
out from training and the gate decides on those instead: they are the traffic the model will
serve, so a candidate that only wins on the source's (older) test split is not promoted. The
reason says which rows decided, with the test-split figures beside it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import mlflow
import pandas as pd

from lifecycle.core.settings import LOWER_IS_BETTER, Settings, Task
from lifecycle.data.splits import Splits
from lifecycle.decisions import gate_evidence
from lifecycle.model.evaluation import evaluate, is_better_or_equal
from lifecycle.model.predictor import Predictor
from lifecycle.stores import registry, registry_loading
from lifecycle.stores.registry import CHALLENGER, CHAMPION
from lifecycle.training.candidate import Candidate

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
    missed = missed_bound(metric, task, candidate_value, settings)
    if missed is not None:
        return GateDecision(
            False, CHALLENGER, missed, candidate_value, champion_version, champion_value
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


def missed_bound(metric: str, task: Task, value: float, settings: Settings) -> str | None:
    """Why `value` misses MLOPS_MIN_METRIC (MLOPS_MAX_METRIC for lower-is-better metrics)."""
    low, high = settings.metric_bounds(task)
    lower_better = metric in LOWER_IS_BETTER
    bound = high if lower_better else low
    if bound is None or (value <= bound if lower_better else value >= bound):
        return None
    word = "above the maximum" if lower_better else "below the minimum"
    return f"{metric} {value:.4f} is {word} {bound:.4f}"


def shadow_first(decision: GateDecision, settings: Settings) -> GateDecision:
    """With a shadow (MLOPS_SHADOW_ALIAS) and live promotion (MLOPS_AUTO_PROMOTE) configured, a
    candidate that passes the gate replacing a champion goes to the shadow alias first: the
    report flow promotes it when live evidence says so (lifecycle.decisions.experiment)."""
    alias = settings.shadow_alias
    if not (decision.promoted and alias and settings.auto_promote and decision.champion_version):
        return decision
    reason = f"{decision.reason}; to shadow `{alias}` first: live evidence promotes it"
    return replace(decision, promoted=False, alias=alias, reason=reason)


def apply_decision(version: str, decision: GateDecision, settings: Settings | None = None) -> None:
    """Move aliases for a gated candidate."""
    if decision.promoted:
        registry.promote(version, settings)
    else:
        alias = decision.alias if decision.alias != CHAMPION else CHALLENGER
        registry.set_alias(alias, version, settings)


def gate(
    candidate: Candidate,
    splits: Splits,
    settings: Settings,
    holdout: pd.DataFrame | None = None,
) -> GateDecision:
    """Offline A/B: candidate and current champion on the same fresh test split, or on the most
    recent labelled production rows (`holdout`, held out from training) when there are some."""
    spec = candidate.predictor.spec
    metric = settings.primary_metric(spec.task)
    champion = registry.version_by_alias(registry.CHAMPION, settings)
    champion_version = str(champion.version) if champion is not None else None
    champ = None
    if champion_version is not None and champion_version != candidate.version:
        try:
            _, champ = registry_loading.load_predictor(champion_version, settings)
        except Exception as exc:  # any failure means "cannot compare"; the reason is logged
            log.warning("champion v%s cannot be loaded: %s", champion_version, exc)
    champion_test = _score(champ, splits.test, metric, champion_version)
    decision = decide(
        metric, spec.task, candidate.test_metrics[metric], champion_test, settings, champion_version
    )
    rows = splits.test
    if holdout is not None and len(holdout):
        decision = _decide_on_production(
            candidate, champ, holdout, metric, settings, champion_version, decision
        )
        rows = holdout
    decision = with_evidence(decision, candidate.predictor, champ, rows, metric, settings)
    decision = shadow_first(decision, settings)
    apply_decision(candidate.version, decision, settings)
    record_reason(candidate.version, candidate.run_id, decision, settings)
    return decision


def record_reason(version: str, run_id: str, decision: GateDecision, settings: Settings) -> None:
    """Write the decision's reason where it is read: the version's gate tag (TAG_GATE) and the
    training run's `gate_reason` / `gate_promoted` tags."""
    registry.tag_version(version, registry.TAG_GATE, decision.reason, settings)
    with mlflow.start_run(run_id=run_id):
        mlflow.set_tags({"gate_promoted": str(decision.promoted), "gate_reason": decision.reason})


def amend_reason(
    version: str, run_id: str, decision: GateDecision, addition: str, settings: Settings
) -> GateDecision:
    """The decision with `addition` appended to its reason (evidence gathered after the aliases
    moved, such as the candidate's backtest), recorded again where the gate recorded it."""
    amended = replace(decision, reason=f"{decision.reason}; {addition}")
    record_reason(version, run_id, amended, settings)
    return amended


def with_evidence(
    decision: GateDecision,
    candidate: Predictor,
    champion: Predictor | None,
    rows: pd.DataFrame,
    metric: str,
    settings: Settings,
) -> GateDecision:
    """The point decision checked against the evidence on the rows it was taken on
    (lifecycle.decisions.gate_evidence): a degenerate candidate is refused; against a champion,
    the guardrails and the paired interval decide instead of two point estimates."""
    spec = candidate.spec
    y = rows[spec.target].to_numpy()
    scored = gate_evidence.score(candidate, rows)
    refused = gate_evidence.degenerate(spec.task, y, scored, spec.classes)
    if refused:
        why = f"refused, degenerate on {len(y)} rows: {'; '.join(refused)}"
        return replace(decision, promoted=False, alias=CHALLENGER, reason=why)
    missed = missed_bound(metric, spec.task, decision.candidate_value, settings)
    if champion is None or decision.champion_value is None or missed is not None:
        return decision
    try:
        theirs = gate_evidence.score(champion, rows)
    except Exception as exc:  # e.g. the champion's features differ: the point decision stands
        log.warning("champion cannot score the gate's rows: %s", exc)
        return decision
    tolerance = settings.tolerance(spec.task, decision.champion_value)
    paired = gate_evidence.paired_primary(
        metric, spec.task, y, scored, theirs, spec.classes, tolerance
    )
    failures = gate_evidence.guardrails(spec.task, scored, theirs)
    figures = paired.describe(metric, tolerance)
    if paired.verdict == "non-inferior" and not failures:
        why = f"{decision.reason}; non-inferior: {figures}"
        return replace(decision, promoted=True, alias=CHAMPION, reason=why)
    if paired.verdict == "inconclusive":
        why = f"inconclusive on {paired.rows} rows: {figures}"
    elif paired.verdict == "worse":
        why = f"worse than champion v{decision.champion_version}: {figures}"
    else:
        why = f"guardrails failed: {'; '.join(failures)} ({figures})"
    return replace(decision, promoted=False, alias=CHALLENGER, reason=why)


def _decide_on_production(
    candidate: Candidate,
    champ: Predictor | None,
    holdout: pd.DataFrame,
    metric: str,
    settings: Settings,
    champion_version: str | None,
    on_test: GateDecision,
) -> GateDecision:
    """The decision on the held-out production rows, with the test split's figures beside it."""
    spec = candidate.predictor.spec
    candidate_value = evaluate(candidate.predictor, holdout)[metric]
    champion_value = _score(champ, holdout, metric, champion_version)
    decision = decide(
        metric, spec.task, candidate_value, champion_value, settings, champion_version
    )
    test = f"candidate {on_test.candidate_value:.4f}"
    if on_test.champion_value is not None:
        test += f", champion {on_test.champion_value:.4f}"
    reason = decision.reason.replace(" on the same test split", "")
    reason += (
        f" on the {len(holdout)} most recent labelled production rows, held out from training"
        f" (test split: {test})"
    )
    return replace(decision, reason=reason)


def _score(
    predictor: Predictor | None, frame: pd.DataFrame, metric: str, version: str | None
) -> float | None:
    if predictor is None:
        return None
    try:
        return evaluate(predictor, frame).get(metric)
    except Exception as exc:  # e.g. the champion's features differ from this data's
        log.warning("champion v%s cannot score this data: %s", version, exc)
        return None
