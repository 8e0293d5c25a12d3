"""The serving benchmark's printout (bench/bench_serving.py): each server's figures and the
checks against their targets."""

from __future__ import annotations

from typing import Any


def show(name: str, runs: list[dict[str, float]]) -> None:
    per_run = ", ".join(f"{r['rps']:.0f}" for r in runs)
    print(f"  {name}: req/s per run {per_run}", flush=True)


def report(r: dict[str, Any], duration: int, runs: int) -> None:
    peer, on, off = r["mlflow"], r["ours_predict_log_on"], r["ours_predict_log_off"]
    inv, spool = r["ours_invocations_log_on"], r["ours_predict_log_spool"]
    shadow, v2 = r["ours_predict_log_shadow"], r["ours_v2_infer_log_on"]
    ratio = on["rps"] / peer["rps"]
    log_share = on["rps"] / off["rps"]
    print(
        f"serving (one-row requests, wrk -t1 -c8, {duration} s, median of {runs} runs,"
        " 1 worker each):"
    )
    print(f"  {'server':40} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, m in (
        ("mlflow models serve /invocations", peer),
        ("ours /predict, prediction log on", on),
        ("ours /predict, prediction log off", off),
        ("ours /invocations, prediction log on", inv),
        ("ours /v2/models/{name}/infer, log on", v2),
        ("ours /predict, log on, MongoDB down", spool),
        ("ours /predict, same + shadow challenger", shadow),
    ):
        print(f"  {name:40} {m['rps']:9.0f} {m['p50_ms']:8.2f} {m['p99_ms']:8.2f}")
    checks = [
        (f"throughput ratio ours/mlflow       {ratio:8.1f}x", "(target >= 20x)", ratio >= 20),
        (f"/invocations ratio ours/mlflow     {inv['rps'] / peer['rps']:8.1f}x", "", True),
        (
            f"our p99 at 8 connections           {on['p99_ms']:8.2f} ms",
            "(target <= 10 ms)",
            on["p99_ms"] <= 10,
        ),
        (
            f"logging on / off                   {log_share:8.1%}",
            "(target >= 90 %)",
            log_share >= 0.9,
        ),
        (
            f"v2 infer / /predict (log on)       {v2['rps'] / on['rps']:8.1%}",
            "(target >= 80 %)",
            v2["rps"] / on["rps"] >= 0.8,
        ),
        (f"logging, MongoDB down (journal) / off {spool['rps'] / off['rps']:6.1%}", "", True),
        (
            f"shadow on / off (journal only)      {shadow['rps'] / spool['rps']:8.1%}",
            "(target >= 85 %)",
            shadow["rps"] / spool["rps"] >= 0.85,
        ),
        (
            f"log backlog when a run ended        {r['log_backlog']:8.0f} documents,"
            f" in MongoDB {r['log_drain_s']:.2f} s later",
            "",
            True,
        ),
        (f"1,000-row batch request (median)   {r['batch_1000_ms']:8.1f} ms", "", True),
        (
            f"RSS of our serving process         {r['rss_mb']:8.0f} MB",
            "(target <= 500 MB)",
            r["rss_mb"] <= 500,
        ),
    ]
    checks.append(
        (
            f"prediction log: {r['logged_docs']:,} documents for {r['predicted_rows']:,.0f}"
            " predicted rows",
            "(all stored)",
            r["logged_docs"] == r["predicted_rows"],
        )
    )
    for text, target, ok in checks:
        mark = "" if not target else ("  ok" if ok else "  MISSED")
        print(f"  {text} {target}{mark}")


def report_compare(r: dict[str, dict[str, float]], duration: int, runs: int) -> None:
    """`--compare`: each tree's /predict, this tree's /v2 infer, and their ratios."""
    print(
        f"serving, trees compared (one-row requests, wrk -t1 -c8, {duration} s, median of"
        f" {runs} interleaved runs, 1 worker each, prediction log to the journal):"
    )
    medians = {name: m for name, m in r.items() if name != "paired_ratios"}
    print(f"  {'server':60} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, m in medians.items():
        print(f"  {name:60} {m['rps']:9.0f} {m['p50_ms']:8.2f} {m['p99_ms']:8.2f}")
    ours = medians["this tree /predict"]["rps"]
    print("  ratios: of the medians | median of the per-round ratios")
    for name, m in medians.items():
        if name == "this tree /predict":
            continue
        label = f"this tree / {name}"
        ratio, paired = ours / m["rps"], r["paired_ratios"][label]
        if "/v2/" in name:  # the other way round: v2 against /predict
            label, ratio, paired = "v2 infer / /predict (this tree)", 1 / ratio, 1 / paired
            ok = "ok" if paired >= 0.8 else "MISSED"
            target = "(target >= 80 %)"
        else:
            ok = "ok" if abs(paired - 1) <= 0.03 else "MISSED"
            target = "(target within 3 %)"
        print(f"  {label:60} {ratio:7.1%} | {paired:7.1%} {target}  {ok}")
