"""Prefect deployments (prefect.yaml) and automations, applied by `make deploy`."""
