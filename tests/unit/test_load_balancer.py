"""`make up` with MLOPS_API_REPLICAS=N: N API processes on their own ports and journal folders,
behind nginx on the API port with least_conn, passive health checks and retries (POSTs too);
the config is one nginx accepts (`nginx -t`). The behaviour under load and kills is proved in
tests/integration/test_replicas.py."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from lifecycle.core.settings import Settings
from ops.load_balancer import render_config, replica_ports, write_config
from ops.stack import Ports, procfile
from tests.fixtures.servers import require_binary


def test_load_balancer_config_balances_least_conn_and_retries_posts(tmp_path: Path) -> None:
    conf = render_config([8001, 8002], 8000, tmp_path)
    assert "least_conn;" in conf
    assert "server 127.0.0.1:8001 max_fails=3 fail_timeout=2s;" in conf
    assert "server 127.0.0.1:8002 max_fails=3 fail_timeout=2s;" in conf
    assert "proxy_next_upstream error timeout http_502 http_503 non_idempotent;" in conf
    assert "proxy_next_upstream_tries 2;" in conf
    assert "listen 127.0.0.1:8000" in conf
    assert "$host" in conf and "${" not in conf


def test_load_balancer_config_is_accepted_by_nginx(tmp_path: Path) -> None:
    nginx = require_binary("nginx")
    balancer = write_config([8001, 8002, 8003], 8000, tmp_path / "lb")
    command = balancer.command(nginx)
    result = subprocess.run([*command[:-2], "-t"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_stack_with_replicas_runs_each_on_its_port_and_journal_behind_nginx(
    tmp_path: Path,
) -> None:
    require_binary("nginx")  # the balancer's command names it
    settings = Settings(MLOPS_HOME=str(tmp_path / "mlops"), MLOPS_API_REPLICAS=2)
    lines = dict(line.split(": ", 1) for line in procfile(settings, Ports(), False).splitlines())
    assert "api" not in lines
    spools = set()
    for i, port in enumerate(replica_ports(8000, 2), start=1):
        words = shlex.split(lines[f"api-{i}"])
        spools.add(words[0])
        assert words[0] == f"MLOPS_SPOOL_DIR={settings.home / 'spool' / f'replica-{i}'}"
        assert words[-2:] == ["--port", str(port)]
    assert len(spools) == 2
    balancer = shlex.split(lines["balancer"])
    conf = Path(balancer[balancer.index("-c") + 1]).read_text()
    assert "server 127.0.0.1:8001 " in conf and "server 127.0.0.1:8002 " in conf
    assert "listen 127.0.0.1:8000" in conf


def test_stack_with_one_replica_runs_the_api_on_its_port(tmp_path: Path) -> None:
    settings = Settings(MLOPS_HOME=str(tmp_path / "mlops"))
    lines = dict(line.split(": ", 1) for line in procfile(settings, Ports(), False).splitlines())
    assert lines["api"].endswith("serve --port 8000")
    assert "balancer" not in lines
