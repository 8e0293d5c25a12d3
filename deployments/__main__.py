"""`make deploy`: apply everything to the Prefect server in PREFECT_API_URL, non-interactively.

1. the `lifecycle` process work pool (created or updated);
2. every deployment of deployments/prefect.yaml (from the repository root, where entrypoints
   resolve);
3. the staleness guard (when MLOPS_ALERT_WEBHOOK_URL is set) and the drift → retrain automation
   (when MLOPS_RETRAIN_ON_DRIFT=true).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POOL = "lifecycle"
PREFECT = str(Path(sys.executable).parent / "prefect")


def run(args: list[str], env: dict[str, str]) -> None:
    print("+", " ".join(args[1:] if args[0] == PREFECT else args), flush=True)
    subprocess.run(args, cwd=ROOT, env=env, check=True)


def main() -> int:
    if not os.environ.get("PREFECT_API_URL"):
        # Without it the Prefect CLI silently starts a temporary server and deploys to nothing.
        print(
            "error: PREFECT_API_URL is not set (make up sets it; or export "
            "PREFECT_API_URL=http://127.0.0.1:4200/api)",
            file=sys.stderr,
        )
        return 1
    env = {**os.environ, "LIFECYCLE_ROOT": str(ROOT)}
    try:
        run([PREFECT, "work-pool", "create", POOL, "--type", "process", "--overwrite"], env)
        run(
            [
                PREFECT,
                "--no-prompt",
                "deploy",
                "--prefect-file",
                "deployments/prefect.yaml",
                "--all",
            ],
            env,
        )
        run([sys.executable, "-m", "deployments.automations"], env)
        run([sys.executable, "-m", "deployments.retrain"], env)
    except subprocess.CalledProcessError as exc:
        command = " ".join(map(str, exc.cmd[1:]))
        print(f"error: `{command}` exited {exc.returncode}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
