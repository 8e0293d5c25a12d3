"""`mlops status`: one look at the whole loop. Each part answers on its own, so a store that is
down shows as such while the others still report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lifecycle.core.settings import Settings, get_settings
from lifecycle.core.times import utcnow
from lifecycle.stores import journal, registry, registry_runs
from reporting.unseen import unseen_line

SPOOL_GLOB = f"{journal.PREFIX}*"  # the serving tier's journal segments


@dataclass
class Status:
    champion: dict[str, Any] | None = None
    champion_age_hours: float | None = None
    aliases: dict[str, str] = field(default_factory=dict)
    last_training: dict[str, Any] | None = None
    last_report: dict[str, Any] | None = None
    predictions_24h: int | None = None
    feedback_24h: int | None = None
    spooled: int = 0
    problems: list[str] = field(default_factory=list)


def collect(settings: Settings | None = None) -> Status:
    settings = settings or get_settings()
    status = Status()
    try:
        _registry_part(settings, status)
    except Exception as exc:  # any registry failure is reported, not raised
        status.problems.append(f"registry {settings.mlflow_tracking_uri}: {_first_line(exc)}")
    try:
        _store_part(settings, status)
    except Exception as exc:  # MongoDB down is a status, not an error
        status.problems.append(f"MongoDB {settings.mongo_uri}: {_first_line(exc)}")
    status.spooled = count_spooled(settings)
    return status


def count_spooled(settings: Settings) -> int:
    """Predictions in the API's journal (MLOPS_HOME/spool) that MongoDB does not hold yet."""
    if not settings.spool_dir.is_dir():
        return 0
    return sum(journal.count_documents(path) for path in settings.spool_dir.glob(SPOOL_GLOB))


def _registry_part(settings: Settings, status: Status) -> None:
    status.aliases = registry.aliases(settings)
    champion = registry.version_by_alias(registry.CHAMPION, settings)
    if champion is not None:
        status.champion = registry.describe(champion)
        trained_at = registry.trained_at(champion)
        if trained_at is not None:
            status.champion_age_hours = (utcnow().timestamp() - trained_at) / 3600
    run = registry_runs.latest_training_run(settings)
    if run is not None:
        status.last_training = {
            "run_id": run.info.run_id,
            "state": run.info.status,
            "started": datetime.fromtimestamp(run.info.start_time / 1000, UTC),
            "trials": run.data.params.get("trials"),
            "promoted": run.data.tags.get("gate_promoted"),
            "reason": run.data.tags.get("gate_reason"),
        }


def _store_part(settings: Settings, status: Status) -> None:
    from lifecycle.stores.prediction_store import PredictionStore

    store = PredictionStore.open(settings, "status")
    try:
        since = datetime.now(UTC) - timedelta(hours=24)
        status.predictions_24h = store.predictions.count_documents({"ts": {"$gte": since}})
        status.feedback_24h = store.feedback.count_documents({"ts": {"$gte": since}})
        status.last_report = store.latest_report(settings.model_name)
    finally:
        store.close()


def render(status: Status, settings: Settings) -> list[str]:
    """Plain lines for the terminal."""
    lines = [f"model {settings.model_name} ({settings.mlflow_tracking_uri})"]
    if status.champion:
        c = status.champion
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in c["metrics"].items())
        age = (
            f"{status.champion_age_hours:.1f} h old"
            if status.champion_age_hours is not None
            else ""
        )
        stale = (
            "  STALE"
            if status.champion_age_hours is not None
            and status.champion_age_hours > settings.stale_after_hours
            else ""
        )
        lines.append(f"  champion    v{c['model_version']}, {age}{stale}; test {metrics}")
    else:
        lines.append("  champion    none yet (run `mlops train`)")
    if status.aliases:
        lines.append(
            "  aliases     " + ", ".join(f"{a}=v{v}" for a, v in sorted(status.aliases.items()))
        )
    if status.last_training:
        t = status.last_training
        lines.append(
            f"  last train  {t['started']:%Y-%m-%d %H:%M} UTC, {t['state']}, "
            f"{t['trials']} trials; {t['reason'] or ''}"
        )
    if status.last_report:
        r = status.last_report
        live = r.get("metrics") or {}
        live_text = ", ".join(f"live {k}={v:.4f}" for k, v in live.items() if v is not None)
        lines.append(
            f"  last report {r.get('window_end'):%Y-%m-%d %H:%M} UTC, v{r.get('model_version')}, "
            f"{r.get('rows')} rows, drift share {r.get('drift_share', 0):.2f}"
            + (f", {live_text}" if live_text else "")
        )
        lines += estimate_lines(r)
        unseen = unseen_line(r.get("unseen_categories"))
        lines += [f"  unseen      {unseen}"] if unseen else []
        lines += experiment_lines(r)
    elif status.predictions_24h is not None:
        lines.append("  last report none yet")
    if status.predictions_24h is not None:
        lines.append(
            f"  last 24 h   {status.predictions_24h} predictions, {status.feedback_24h} labels"
        )
    lines.append(f"  journal     {status.spooled} predictions waiting for MongoDB")
    lines += [f"  unavailable {p}" for p in status.problems]
    return lines


def estimate_lines(report: dict[str, Any]) -> list[str]:
    """The report's label-free estimate and, once labels arrived, whether they contradicted it."""
    estimated = report.get("estimated")
    if not estimated:
        note = report.get("estimate_note")
        return [f"  estimated   {note}"] if note else []
    lines = [
        f"  estimated   {estimated['metric']}={estimated['value']:.4f} "
        f"[{estimated['low']:.4f}, {estimated['high']:.4f}] on {estimated['rows']} rows, "
        "no labels needed"
    ]
    concept = report.get("concept_drift")
    if concept:
        verdict = "CONCEPT DRIFT SUSPECTED" if concept["suspected"] else "inside the interval"
        lines.append(
            f"  realized    {concept['metric']}={concept['realized']:.4f} on {concept['rows']} "
            f"labelled rows: {verdict}"
        )
    return lines


def experiment_lines(report: dict[str, Any]) -> list[str]:
    """The live comparison and decisions of a report (flows.experiment), one line each."""
    comparison = report.get("experiment") or {}
    lines = []
    paired = comparison.get("paired")
    if paired:
        lines.append(
            f"  experiment  v{paired['challenger']} vs v{paired['champion']}: "
            f"{paired['pairs']} paired labels, p={paired['p_value']:.4g}"
        )
    for decision in comparison.get("decisions") or []:
        if decision["action"] != "none" or paired:
            lines.append(f"  decision    {decision['reason']}")
    return lines


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
