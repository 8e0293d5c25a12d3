"""The nginx config that serves the reports dir: a template in this folder, rendered with the
reports dir, the listen address and a private prefix (pid, logs, temp files)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from string import Template

TEMPLATE = Path(__file__).with_name("nginx.conf")


@dataclass(frozen=True)
class NginxConfig:
    """A rendered config and the prefix it expects (`nginx -c conf -p prefix`)."""

    conf: Path
    prefix: Path

    def command(self, binary: str = "nginx", user: str | None = None) -> list[str]:
        """The foreground command line (daemon off, so a supervisor or test owns the process).

        `-e` keeps even nginx's start-up messages in our prefix (the compiled-in default is
        /var/log/nginx). `user` matters only when started as root: workers then drop to that
        user, who must be able to read the reports dir (Debian's default is www-data/nobody).
        """
        directives = "daemon off;" + (f" user {user};" if user else "")
        return [
            binary,
            "-c",
            str(self.conf),
            "-p",
            str(self.prefix),
            "-e",
            str(self.prefix / "error.log"),
            "-g",
            directives,
        ]


def render_config(
    reports_dir: Path, port: int = 8088, host: str = "127.0.0.1", prefix: Path | None = None
) -> str:
    """The template with our placeholders filled in; nginx's own `$variables` stay as they are.

    Paths are made absolute: nginx resolves relative ones against its prefix, not our cwd.
    """
    reports = Path(reports_dir).expanduser().resolve()
    prefix = (Path(prefix) if prefix else reports.parent / "nginx").expanduser().resolve()
    for name, value in (("reports dir", reports), ("prefix", prefix)):
        if any(c in str(value) for c in ";{}\"'\n") or " " in str(value):
            raise ValueError(
                f"{name} {str(value)!r}: nginx paths may not hold spaces, quotes, ; or braces"
            )
    return Template(TEMPLATE.read_text()).safe_substitute(
        REPORTS_DIR=str(reports), PREFIX=str(prefix), LISTEN=host, PORT=str(int(port))
    )


def write_config(
    reports_dir: Path, prefix: Path, port: int = 8088, host: str = "127.0.0.1"
) -> NginxConfig:
    """Render the config into `prefix/nginx.conf`, creating the prefix and temp folders."""
    prefix = Path(prefix).expanduser().resolve()
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    Path(reports_dir).mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(render_config(reports_dir, port, host, prefix))
    return NginxConfig(conf, prefix)
