"""Prefect flows: orchestration only (retries, timeouts, artifacts)."""
