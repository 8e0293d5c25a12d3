"""Our nginx config on a real nginx (Debian): serves the index and reports, gzip, cache headers,
read-only, and nothing outside the reports dir. Then the index in a real headless Chromium."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lifecycle.data.synthetic import generate_churn
from lifecycle.model.predictor import FeatureSpec
from reporting.builder import report_files
from reporting.drift import build_drift_report
from reporting.files import write_atomic
from reporting.index import write_index
from tests.fixtures.servers import require_binary

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _get(port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET"):
    """A raw request: the path goes on the wire exactly as written (no client normalising)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def _summaries(reports_dir: Path, days: int = 10) -> None:
    """Report summaries every 6 hours over `days` days, with drift rising towards the end."""
    end = datetime(2026, 3, 1, tzinfo=UTC)
    for i in range(days * 4):
        ts = end - timedelta(hours=6 * i)
        share = 0.05 + 0.5 * max(0, 8 - i) / 8
        files = report_files(reports_dir, "3" if i < 12 else "2", ts)
        summary = {
            "model_version": files.html.parent.name,
            "window_end": ts.isoformat(),
            "rows": 1000 + 10 * i,
            "labelled_rows": 300,
            "drift_share": share,
            "drift_threshold": 0.3,
            "drift_detected": share > 0.3,
            "drifted_columns": ["customer_age"] if share > 0.3 else [],
            "primary_metric": "accuracy",
            "live_metric": 0.80 - 0.002 * max(0, 12 - i),
            "sampled": i % 7 == 0,
            "relative_html": files.relative_html,
        }
        write_atomic(files.json, json.dumps(summary))
        if not files.html.exists():
            write_atomic(files.html, f"<!DOCTYPE html><title>report {i}</title>")


@pytest.fixture(scope="module")
def reports_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reports dir with a real Evidently report, the index page, and things never served."""
    root = tmp_path_factory.mktemp("served") / "reports"
    reference = generate_churn(1200, seed=1)
    spec = FeatureSpec.infer(reference, "churn", "binary")
    reference["prediction"] = reference["churn"]
    current = generate_churn(400, seed=2, drift=0.5)
    current["prediction"] = current["churn"]
    content = build_drift_report(current.drop(columns=["churn"]), reference, spec)
    files = report_files(root, "1", datetime(2026, 3, 1, 12, tzinfo=UTC))
    write_atomic(files.html, content.html)
    _summaries(root)
    champions = [
        {"version": "2", "metric": "accuracy", "value": 0.79, "trained_at": "2026-02-20"},
        {"version": "3", "metric": "accuracy", "value": 0.81, "trained_at": "2026-02-27"},
    ]
    write_index(root, champions, 0.3)
    (root / ".env").write_text("MLOPS_API_KEY=secret\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    (root / "empty").mkdir()
    (root / "escape.html").symlink_to("/etc/passwd")
    return root


def test_nginx_serves_index_and_reports(reports_dir: Path, reports_nginx) -> None:
    server = reports_nginx(reports_dir)

    for path in ("/", "/index.html"):
        status, headers, body = _get(server.port, path)
        assert status == 200
        assert headers["Content-Type"].startswith("text/html")
        assert headers["Cache-Control"] == "no-cache"
        assert b"Lifecycle reports" in body and b"<svg" in body

    status, headers, body = _get(server.port, "/1/20260301T120000Z.html")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "max-age" in headers["Cache-Control"]
    assert "Content-Encoding" not in headers  # not asked for gzip

    status, headers, zipped = _get(
        server.port, "/1/20260301T120000Z.html", {"Accept-Encoding": "gzip"}
    )
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped) == body
    assert len(zipped) < len(body) / 3

    json_path = next(p for p in reports_dir.glob("3/*.json"))
    status, headers, _ = _get(server.port, f"/3/{json_path.name}", {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(
    "path",
    [
        "/../etc/passwd",
        "/1/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2fetc/passwd",
        "/.env",
        "/.git/config",
        "/%2eenv",
        "/1/",
        "/empty/",
        "/escape.html",
    ],
)
def test_nginx_refuses_outside_dotfiles_and_listings(
    path: str, reports_dir: Path, reports_nginx
) -> None:
    server = reports_nginx(reports_dir)

    status, _, body = _get(server.port, path)

    assert status in (403, 404)
    assert b"root:" not in body and b"secret" not in body and b"Index of" not in body


def test_nginx_is_read_only(reports_dir: Path, reports_nginx) -> None:
    server = reports_nginx(reports_dir)
    for method in ("POST", "PUT", "DELETE"):
        status, _, _ = _get(server.port, "/index.html", method=method)
        assert status == 405
    assert (reports_dir / "index.html").exists()


def test_index_renders_in_headless_chromium(
    reports_dir: Path, reports_nginx, tmp_path: Path
) -> None:
    binary = require_binary("chromium")
    server = reports_nginx(reports_dir)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "reporting-index.png"
    shot.unlink(missing_ok=True)
    common = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--enable-logging=stderr",
        "--v=0",
    ]
    env = {**os.environ, "HOME": str(tmp_path)}

    dom = subprocess.run(
        [*common, f"--user-data-dir={tmp_path / 'dom'}", "--dump-dom", server.url + "/"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    subprocess.run(
        [
            *common,
            f"--user-data-dir={tmp_path / 'shot'}",
            f"--screenshot={shot}",
            "--window-size=1280,1600",
            server.url + "/",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )

    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<svg") == 6
    assert "Drift share per report" in dom.stdout and "Weekly average accuracy" in dom.stdout
    assert 'href="3/20260301T000000Z.html"' in dom.stdout  # newest report, linked relatively
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    assert shot.exists() and shot.stat().st_size > 20_000
    # Every request the page made went to nginx and succeeded (nothing fetched elsewhere).
    log = (server.prefix / "access.log").read_text().splitlines()
    assert log and all('" 200 ' in line or ('" 404 ' in line and "favicon" in line) for line in log)
