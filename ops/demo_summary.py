"""What the demo prints at its end: the primary metric and live accuracy before and after, the
sequential test's decision, and each version's skill on the same drifted rows."""

from __future__ import annotations

from typing import Any

from lifecycle.core.settings import Settings


def summary(before: dict[str, Any], comparison: dict[str, Any], after: list[Any]) -> None:
    """The primary metric (test, and live on the drifted window) and live accuracy before, live
    accuracy after (the last round, served by the promoted version), and what the sequential
    test saw."""
    running = (comparison.get("sequential") or {}).get("state") or {}
    pairs = sum(running.get(k, 0) for k in ("wins", "losses", "ties"))
    last = after[-1] if after else None
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    metric = before.get("primary_metric") or "metric"
    accuracy = (before.get("metrics") or {}).get("accuracy")
    print(
        f"\nv{before.get('model_version')}: test {metric} {fmt(before.get('test_metric'))}; "
        f"on the drifted window live {metric} {fmt(before.get('live_metric'))}, live accuracy "
        f"{fmt(accuracy)} -> after {fmt(last.accuracy if last else None)} (last round); "
        f"sequential test {running.get('decision', 'n/a')} on {pairs} pairs; promoted on live "
        "evidence, never by hand"
    )


def skill(settings: Settings, old: str, after: list[Any]) -> None:
    """F1 and ROC AUC of the old and the new champion on the same 2,000 drifted rows with their
    labels (drift and concept 1, as the traffic): accuracy alone would crown "nobody churns"."""
    from lifecycle.data.synthetic import generate_churn
    from lifecycle.decisions.gate_evidence import score
    from lifecycle.stores.registry_loading import load_predictor

    rows = generate_churn(2000, seed=404, drift=1.0, concept=1.0)
    new = next(iter(after[-1].versions), None) if after else None
    for version in dict.fromkeys([old, new]):
        if version is None:
            continue
        _, predictor = load_predictor(version, settings)
        m = score(predictor, rows).metrics
        print(
            f"v{version} on 2,000 drifted rows ({rows['churn'].mean():.0%} churn): accuracy "
            f"{m['accuracy']:.3f}, F1 {m['f1']:.3f}, ROC AUC {m.get('roc_auc', float('nan')):.3f}"
        )
