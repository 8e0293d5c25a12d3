#!/bin/sh
# Entry point of the prefect-worker container: apply the work pool, every deployment of
# deployments/prefect.yaml and the automations exactly as `make deploy` does (python -m deployments,
# which also sets LIFECYCLE_ROOT for the pull step), then become the worker.
# Runs from /app, the repo layout, because `prefect deploy` resolves entrypoints from the cwd.
set -eu
pool="${LIFECYCLE_WORK_POOL:-lifecycle}"
# Without PREFECT_API_URL the CLI would silently start an ephemeral server of its own and deploy
# into it; fail loudly instead (python -m deployments checks this too).
: "${PREFECT_API_URL:?PREFECT_API_URL must point at the Prefect server, e.g. http://prefect-server:4200/api}"
python -m deployments
# exec, so the worker itself receives the SIGTERM of `docker stop`.
exec prefect worker start --pool "$pool" --with-healthcheck
