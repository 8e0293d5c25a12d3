"""`make deploy`: apply everything to the Prefect server in PREFECT_API_URL, non-interactively.

1. the work pool of LIFECYCLE_WORK_POOL_TYPE (created or updated): `lifecycle` (process, the
   default), `lifecycle-kubernetes` or `lifecycle-ecs` (from the worker type's default base job
   template; deployments/pools.py);
2. every deployment of deployments/prefect.yaml (from the repository root, where entrypoints
   resolve), on that pool, with the variant's pull step and job variables for a cluster;
3. the staleness guard (when MLOPS_ALERT_WEBHOOK_URL is set) and the drift → retrain automation
   (when MLOPS_RETRAIN_ON_DRIFT=true).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from deployments import pools
from deployments.console import run_entry_point
from lifecycle.core.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parent.parent
POOL = pools.POOLS["process"]


class PrefectCommandError(Exception):
    """A `prefect` command exited non-zero (it printed why)."""

    def __init__(self, args: list[str], code: int) -> None:
        super().__init__(f"error: `{' '.join(args)}` exited {code}")


def run(args: list[str]) -> None:
    """`prefect ARGS` in this process, from the repository root, where entrypoints resolve.

    The Prefect CLI's own app, not a child `prefect` process: each child imported Prefect
    again, and `deploy` the flows too (about 5 s of CPU each, twice per deploy).
    """
    from prefect.cli import app

    print("+", " ".join(args), flush=True)
    with contextlib.chdir(ROOT):
        code = run_entry_point(app, ["prefect", *args])
    if code != 0:
        raise PrefectCommandError(args, code)


def main() -> int:
    if not os.environ.get("PREFECT_API_URL"):
        # Without it the Prefect CLI silently starts a temporary server and deploys to nothing.
        print(
            "error: PREFECT_API_URL is not set (make up sets it; or export "
            "PREFECT_API_URL=http://127.0.0.1:4200/api)",
            file=sys.stderr,
        )
        return 1
    os.environ["LIFECYCLE_ROOT"] = str(ROOT)  # prefect.yaml's pull step reads it
    try:
        settings = get_settings()
    except ValidationError as exc:  # e.g. LIFECYCLE_WORK_POOL_TYPE=docker: one line, no traceback
        error = exc.errors()[0]
        field = error["loc"][0] if error["loc"] else "settings"
        print(f"error: {field}: {error['msg']}", file=sys.stderr)
        return 1
    pool_type = settings.work_pool_type
    try:
        prefect_file, template = _pool_files(settings, pool_type)
        run(pools.pool_command(pool_type, template))
        run(["--no-prompt", "deploy", "--prefect-file", prefect_file, "--all"])
        if _apply_automations() != 0:
            return 1
    except PrefectCommandError as exc:
        print(exc, file=sys.stderr)
        return 1
    except ValueError as exc:  # no default base job template for the type
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _apply_automations() -> int:
    """The staleness guard and the drift → retrain automation, in this process: each as its own
    `python -m` would import Prefect twice more for two API calls."""
    import click

    from deployments import automations, retrain

    print("+ automations: staleness guard, retrain on drift", flush=True)
    try:
        automations.apply(flow=automations.TRAIN_FLOW, deployment="*")
    except click.exceptions.Exit as exc:  # it printed its one-line error
        return exc.exit_code
    return retrain.main()


def _pool_files(settings: Settings, pool_type: pools.PoolType) -> tuple[str, Path | None]:
    """The prefect file to deploy, and the pool's base job template file (None: the type's
    default as it is, the process pool's case). Cluster variants are resolved under MLOPS_HOME."""
    if pool_type == "process":
        return "deployments/prefect.yaml", None  # relative, as the yaml's own header says
    folder = settings.home / "deploy"
    prefect_file = pools.prefect_file(settings, pool_type, folder)
    template = folder / f"base-job-template-{pool_type}.json"
    template.write_text(json.dumps(pools.base_job_template(pool_type), indent=2))
    print(f"work pool type {pool_type}: {prefect_file}", flush=True)
    return str(prefect_file), template


if __name__ == "__main__":
    sys.exit(main())
