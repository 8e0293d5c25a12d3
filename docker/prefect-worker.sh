#!/bin/sh
# Entry point of the prefect-worker container: make sure the process work pool exists, apply every
# deployment in deployments/prefect.yaml and the automations (as `make deploy` does), then become
# the worker.
# Runs from /app, the repo layout, because `prefect deploy` resolves entrypoints from the cwd.
set -eu

pool="${LIFECYCLE_WORK_POOL:-lifecycle}"

# Without PREFECT_API_URL the CLI would silently start an ephemeral server of its own and deploy
# into it; fail loudly instead.
: "${PREFECT_API_URL:?PREFECT_API_URL must point at the Prefect server, e.g. http://prefect-server:4200/api}"

# --overwrite makes this idempotent: without it `create` exits 1 when the pool already exists.
prefect work-pool create "$pool" --type process --overwrite
prefect --no-prompt deploy --prefect-file deployments/prefect.yaml --all
# The Prefect-native staleness guard (skipped, with a message, when MLOPS_ALERT_WEBHOOK_URL is unset).
python -m deployments.automations

# exec, so the worker itself receives the SIGTERM of `docker stop`.
exec prefect worker start --pool "$pool" --with-healthcheck
