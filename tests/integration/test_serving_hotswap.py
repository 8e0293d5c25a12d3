"""Hot swap under load: a new champion is picked up with every request answered 2xx, and a
broken version is refused while the old one keeps serving."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import httpx
import pytest

from lifecycle import registry
from lifecycle.settings import get_settings
from tests.fixtures.serving import (
    api_env,
    churn_records,
    metric_value,
    register_broken_version,
)
from tests.fixtures.training import train_small

pytestmark = pytest.mark.integration

POLL_SECONDS = 1.0
MIN_REQUESTS = 2000
CONCURRENCY = 16


@dataclass
class Answer:
    started: float
    ended: float
    status: int
    version: str | None


async def _load(url: str, answers: list[Answer], stop: asyncio.Event) -> None:
    rows = churn_records(200, seed=31)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def worker(k: int) -> None:
            i = k
            while not stop.is_set() or len(answers) < MIN_REQUESTS:
                started = time.monotonic()
                try:
                    r = await client.post("/predict", json=rows[i % len(rows)])
                    version = r.json().get("model_version") if r.status_code == 200 else None
                    status = r.status_code
                except httpx.HTTPError as exc:  # a failed request counts as a failure
                    status, version = 0, repr(exc)
                answers.append(Answer(started, time.monotonic(), status, version))
                i += CONCURRENCY

        await asyncio.gather(*(worker(k) for k in range(CONCURRENCY)))


async def _wait_for(predicate, timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_hot_swap_under_load_with_no_failed_request(
    mlops_home, mongo_server, start_api, tmp_path
) -> None:
    settings = get_settings()
    first = train_small(settings, trials=2, seed=1)
    assert first.promoted
    env = api_env(
        mlops_home,
        mongo_server.uri,
        f"swap{uuid.uuid4().hex[:8]}",
        MLOPS_MODEL_POLL_SECONDS=str(POLL_SECONDS),
    )
    server = start_api(env)
    answers: list[Answer] = []

    async def scenario() -> dict:
        stop = asyncio.Event()
        load = asyncio.create_task(_load(server.url, answers, stop))
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as admin:
            await asyncio.sleep(1.0)
            second = await asyncio.to_thread(train_small, settings, 2, "fast", 2)
            if not second.promoted:
                await asyncio.to_thread(registry.promote, second.version, settings)
            moved_at = time.monotonic()

            async def new_version_served() -> bool:
                return any(a.version == second.version for a in answers)

            await _wait_for(new_version_served, 60, f"version {second.version} in answers")
            model = (await admin.get("/model")).json()
            broken = await asyncio.to_thread(register_broken_version, settings, tmp_path)
            await asyncio.to_thread(registry.promote, broken, settings)

            async def refused() -> bool:
                text = (await admin.get("/metrics")).text
                return metric_value(text, "mlops_model_reloads_total", result="failure") >= 1

            await _wait_for(refused, 60, "the broken version to be refused")
            await asyncio.sleep(3 * POLL_SECONDS)  # several polls: still refused, still serving
            stop.set()
            await load
            after = {
                "model": (await admin.get("/model")).json(),
                "ready": (await admin.get("/ready")).status_code,
                "metrics": (await admin.get("/metrics")).text,
            }
        return {
            "first": first.version,
            "second": second.version,
            "broken": broken,
            "moved_at": moved_at,
            "model_at_swap": model,
            **after,
        }

    result = asyncio.run(scenario())

    assert len(answers) >= MIN_REQUESTS
    failures = [a for a in answers if not 200 <= a.status < 300]
    assert not failures, f"{len(failures)} failed requests, e.g. {failures[:3]}"
    versions = {a.version for a in answers}
    assert versions == {result["first"], result["second"]}, versions
    # the switch happens within one poll interval plus the load time of the new version
    load_seconds = result["model_at_swap"]["load_seconds"]
    first_new = min(a.ended for a in answers if a.version == result["second"])
    assert first_new - result["moved_at"] <= POLL_SECONDS + load_seconds + 2.0
    # atomic: once the new version answered, every request started later gets it
    late_old = [a for a in answers if a.started > first_new and a.version == result["first"]]
    assert not late_old
    # the broken version was refused once, counted, and the good one still serves
    assert result["model"]["model_version"] == result["second"]
    assert result["ready"] == 200
    metrics = result["metrics"]
    assert metric_value(metrics, "mlops_model_reloads_total", result="failure") == 1
    assert metric_value(metrics, "mlops_model_reloads_total", result="success") == 2
    assert metric_value(metrics, "mlops_model_info", model_version=result["second"]) == 1
    assert "refused" in server.logs() and f"version {result['broken']}" in server.logs()
