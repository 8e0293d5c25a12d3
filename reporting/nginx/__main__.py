"""`python -m reporting.nginx [--port 8088] [--check]`: render the config for the settings'
reports dir under MLOPS_HOME/nginx and run nginx in the foreground (what `make up` starts)."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

from lifecycle.settings import get_settings
from reporting.nginx import write_config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--check", action="store_true", help="only test the rendered config")
    args = parser.parse_args()
    binary = shutil.which("nginx") or shutil.which("/usr/sbin/nginx")
    if binary is None:
        print("error: nginx is not installed (apt-get install nginx)", file=sys.stderr)
        return 1
    settings = get_settings()
    config = write_config(settings.reports_dir, settings.home / "nginx", args.port, args.host)
    command = config.command(binary)
    if args.check:
        return subprocess.run([*command[:-2], "-t"]).returncode
    print(f"nginx: serving {settings.reports_dir} on http://{args.host}:{args.port}/", flush=True)
    os.execv(binary, command)  # nginx replaces us, so Ctrl-C and supervisors reach it directly
    return 0


if __name__ == "__main__":
    sys.exit(main())
