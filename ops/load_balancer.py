"""nginx as the load balancer in front of the API replicas (`make up` with MLOPS_API_REPLICAS=N).

Every replica is a `mlops serve` of its own, on its own port, with its own journal folder
(MLOPS_SPOOL_DIR), and watches the registry alias itself: nothing is shared between them but
MongoDB and MLflow, so nginx only has to spread requests and step around a dead replica:

- `least_conn`: a request goes to the replica with the fewest open requests (a replica busy
  loading a new model or answering a big batch gets fewer).
- passive health checks (`max_fails`, `fail_timeout`): a replica that failed a request is left
  out for `fail_timeout`, then tried again; nginx has no active checks in its open-source build.
- `proxy_next_upstream error timeout http_502 http_503 non_idempotent`: a request that failed
  on one replica (refused, reset, timed out, or a 503 from a replica without a model yet) is
  passed to the next one, up to `proxy_next_upstream_tries`.

A POST is retried (`non_idempotent`), deliberately. A prediction has no effect besides its log
row, so answering it twice is harmless, while not retrying would turn every request in flight
on a replica that dies into a client error. What it means for the log: a request the dying
replica had already journaled (with MLOPS_LOG_QUEUE=0, every answered row is journaled before it
is sent) and then was answered by another replica is logged twice, under two prediction ids,
one of which no client received; its row reaches MongoDB when the dead replica's journal is
shipped. Every id a client did receive is in MongoDB exactly once. POST /feedback is an upsert
keyed by prediction id, so its retry changes nothing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from string import Template

from reporting.nginx import NginxConfig

TEMPLATE = Template(
    """\
# Rendered by ops/load_balancer.py (make up with MLOPS_API_REPLICAS > 1): least_conn over the API
# replicas, passive health checks, failed requests (POSTs included) passed to the next replica.
worker_processes 1;
pid ${PREFIX}/nginx.pid;
error_log ${PREFIX}/error.log warn;

events {
    worker_connections 4096;
}

http {
    access_log off;  # per-request lines cost throughput; the replicas count requests (/metrics)
    client_body_temp_path ${PREFIX}/tmp/client_body;
    proxy_temp_path ${PREFIX}/tmp/proxy;
    fastcgi_temp_path ${PREFIX}/tmp/fastcgi;
    uwsgi_temp_path ${PREFIX}/tmp/uwsgi;
    scgi_temp_path ${PREFIX}/tmp/scgi;
    server_tokens off;
    # The API's own limit (MLOPS_MAX_BODY_BYTES) answers 413 with its message; nginx only
    # keeps bodies within it. Buffered bodies are what makes a retry possible.
    client_max_body_size ${MAX_BODY};
    client_body_buffer_size 1m;

    upstream lifecycle_api {
        least_conn;
${SERVERS}
        keepalive 64;
        # Below uvicorn's 5 s keep-alive: nginx closes an idle connection before the replica
        # does, so it never reuses one the replica has just closed (a reset, counted as the
        # replica failing).
        keepalive_timeout 4s;
    }

    server {
        listen ${LISTEN}:${PORT} backlog=4096;

        location / {
            proxy_pass http://lifecycle_api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $$host;
            proxy_set_header X-Forwarded-For $$proxy_add_x_forwarded_for;
            proxy_connect_timeout ${CONNECT_TIMEOUT};
            proxy_read_timeout 120s;
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_next_upstream_tries ${TRIES};
            proxy_next_upstream_timeout 30s;
        }
    }
}
"""
)


class LoadBalancer(NginxConfig):
    """The balancer's rendered config and prefix, run in the foreground as the reports' nginx
    is (a supervisor or a test owns the process), with nginx found where Debian puts it."""

    def command(self, binary: str | None = None, user: str | None = None) -> list[str]:
        return super().command(binary or nginx_binary(), user)


def nginx_binary() -> str:
    """The nginx binary (Debian installs it in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("nginx") or shutil.which("/usr/sbin/nginx")
    if found is None:
        raise FileNotFoundError("nginx is not installed (apt-get install nginx)")
    return found


def render_config(
    replica_ports: list[int],
    port: int,
    prefix: Path,
    host: str = "127.0.0.1",
    max_body_bytes: int = 16 << 20,
    fail_timeout: str = "2s",
) -> str:
    """The config for replicas on loopback `replica_ports`, listening on host:port."""
    if not replica_ports:
        raise ValueError("the load balancer needs at least one replica port")
    servers = "\n".join(
        # Three failures within fail_timeout leave a replica out for fail_timeout: a dead one is
        # out after its first few requests, one odd reset does not take a live one out.
        f"        server 127.0.0.1:{p} max_fails=3 fail_timeout={fail_timeout};"
        for p in replica_ports
    )
    return TEMPLATE.substitute(
        PREFIX=str(Path(prefix).resolve()),
        SERVERS=servers,
        LISTEN=host,
        PORT=str(int(port)),
        MAX_BODY=str(int(max_body_bytes) + (64 << 10)),  # headroom for the request line/headers
        CONNECT_TIMEOUT="1s",  # loopback: a replica that does not accept in 1 s is not there
        TRIES=str(len(replica_ports)),
    )


def write_config(
    replica_ports: list[int], port: int, prefix: Path, host: str = "127.0.0.1", **options: object
) -> LoadBalancer:
    """Render the config into `prefix/nginx.conf`, creating the prefix and its temp folder."""
    prefix = Path(prefix).expanduser().resolve()
    tmp = prefix / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    # Started as root, nginx's worker runs as an unprivileged user that must write the bodies
    # it buffers: the temp folder is open to all, as /tmp is (sticky).
    os.chmod(tmp, 0o1777)
    conf = prefix / "nginx.conf"
    conf.write_text(render_config(replica_ports, port, prefix, host, **options))  # type: ignore[arg-type]
    return LoadBalancer(conf, prefix)


def replica_ports(api_port: int, replicas: int) -> list[int]:
    """`make up`'s replica ports: the ones after the API port (8001, 8002, ... for 8000)."""
    return [api_port + i for i in range(1, replicas + 1)]
