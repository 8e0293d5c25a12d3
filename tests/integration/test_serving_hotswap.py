"""Hot swap under load (real uvicorn): a new champion, trained while the load runs, is picked up
with every request answered 2xx, and a broken version is refused while the old one keeps
serving."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from lifecycle.core.settings import Settings, get_settings
from lifecycle.core.waiting import wait_until
from lifecycle.stores import registry
from tests.fixtures.load import Answer, post_until
from tests.fixtures.serving import (
    ApiServer,
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
# The swap takes one poll interval plus the version's load (the API measures it, under this same
# load). On top of that: the alias read (sqlite, ~0.1 s alone, up to ~1 s when 16 clients, the
# API, its shipper and the training's leftovers share 2 cores) and one request's round trip at
# that load (p99 ~1 s); doubled for margin.
SWAP_SLACK_SECONDS = 4.0
# Waits that end as soon as their condition holds; bounds for a loaded 2-core machine, where
# training the second version alongside the load takes up to a minute.
WAIT_SECONDS = 120.0


@dataclass
class Scenario:
    """What the load saw, and what the test did, when."""

    answers: list[Answer] = field(default_factory=list)
    first: str = ""
    second: str = ""
    broken: str = ""
    moved_at: float = 0.0  # when the alias moved to `second`
    model_at_swap: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)


async def _load(url: str, answers: list[Answer], stop: asyncio.Event) -> None:
    rows = churn_records(200, seed=31)
    await post_until(url, rows, answers, stop, CONCURRENCY, MIN_REQUESTS, timeout=30)


def _checked_at(url: str) -> datetime:
    return datetime.fromisoformat(httpx.get(f"{url}/model", timeout=30).json()["checked_at"])


def _reloads(url: str, result: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return metric_value(text, "mlops_model_reloads_total", result=result)


def _swap_to_a_new_champion(settings: Settings, url: str, s: Scenario) -> None:
    """Train the second version while the load runs; wait until the answers carry it."""
    second = train_small(settings, 2, "fast", 2)
    if not second.promoted:
        registry.promote(second.version, settings)
    s.second, s.moved_at = second.version, time.monotonic()
    wait_until(
        lambda: sum(a.version == s.second for a in list(s.answers)),
        f"answers from version {s.second}",
        WAIT_SECONDS,
    )
    s.model_at_swap = httpx.get(f"{url}/model", timeout=30).json()


def _promote_a_broken_version(settings: Settings, url: str, s: Scenario, tmp: Any) -> None:
    """Register and promote a version that cannot load; wait until it is refused, then for
    three more polls of the alias (the refusal is remembered, not retried on every poll)."""
    s.broken = register_broken_version(settings, tmp)
    registry.promote(s.broken, settings)
    wait_until(lambda: _reloads(url, "failure"), "the broken version to be refused", WAIT_SECONDS)
    refused_at = _checked_at(url)
    wait_until(
        lambda: _checked_at(url),
        "three more polls of the alias",
        WAIT_SECONDS,
        done=lambda at: at >= refused_at + timedelta(seconds=3 * POLL_SECONDS),
    )


def _run(server: ApiServer, settings: Settings, s: Scenario, tmp: Any) -> None:
    async def scenario() -> None:
        stop = asyncio.Event()
        load = asyncio.create_task(_load(server.url, s.answers, stop))
        # Under way before the second training starts, so it runs alongside the load.
        await asyncio.to_thread(wait_until, lambda: len(s.answers), "the load to start", 60)
        await asyncio.to_thread(_swap_to_a_new_champion, settings, server.url, s)
        await asyncio.to_thread(_promote_a_broken_version, settings, server.url, s, tmp)
        stop.set()
        await load

    asyncio.run(scenario())
    with httpx.Client(base_url=server.url, timeout=30) as admin:
        s.after = {
            "model": admin.get("/model").json(),
            "ready": admin.get("/ready").status_code,
            "metrics": admin.get("/metrics").text,
        }


def test_hot_swap_under_load_with_no_failed_request(
    prefect_harness, mlops_home, mongo_server, start_api, tmp_path
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
    s = Scenario(first=first.version)
    _run(server, settings, s, tmp_path)

    answers = s.answers
    assert len(answers) >= MIN_REQUESTS
    failures = [a for a in answers if not 200 <= a.status < 300]
    assert not failures, f"{len(failures)} failed requests, e.g. {failures[:3]}"
    versions = {a.version for a in answers}
    assert versions == {s.first, s.second}, versions
    # the switch happens within one poll interval plus the load time of the new version
    load_seconds = s.model_at_swap["load_seconds"]
    first_new = min(a.ended for a in answers if a.version == s.second)
    took = first_new - s.moved_at
    assert took <= POLL_SECONDS + load_seconds + SWAP_SLACK_SECONDS, (took, load_seconds)
    # atomic: once the new version answered, every request started later gets it
    late_old = [a for a in answers if a.started > first_new and a.version == s.first]
    assert not late_old
    # the broken version was refused once, counted, and the good one still serves
    assert s.after["model"]["model_version"] == s.second
    assert s.after["ready"] == 200
    metrics = s.after["metrics"]
    assert metric_value(metrics, "mlops_model_reloads_total", result="failure") == 1
    assert metric_value(metrics, "mlops_model_reloads_total", result="success") == 2
    assert metric_value(metrics, "mlops_model_info", model_version=s.second) == 1
    assert "refused" in server.logs() and f"version {s.broken}" in server.logs()
