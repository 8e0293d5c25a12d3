"""No lost predictions: MongoDB goes down for more than 10 s under load and comes back; every
answered prediction row ends up in `predictions` exactly once (spool + idempotent replay)."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from lifecycle.settings import get_settings
from tests.fixtures.servers import MongoServer, free_port
from tests.fixtures.serving import api_env, churn_records, metric_value, mongo_collection
from tests.fixtures.training import train_small

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 11.0
CONCURRENCY = 8


def test_mongo_outage_under_load_loses_and_duplicates_nothing(
    mlops_home, start_api, tmp_path
) -> None:
    # Its own MongoDB-wire server: this test stops it, and counts every document in it.
    mongo = MongoServer(free_port(), tmp_path / "nx.db", tmp_path)
    mongo.start()
    try:
        train_small(get_settings(), trials=2, seed=1)
        db = f"log{uuid.uuid4().hex[:8]}"
        server = start_api(api_env(mlops_home, mongo.uri, db))
        ids, statuses, during = asyncio.run(_load_through_outage(server.url, mongo))
        predictions = mongo_collection(mongo.uri, db)

        assert statuses and all(200 <= s < 300 for s in statuses), set(statuses)
        assert len(ids) == len(set(ids))
        assert during["spooled"] > 0, "the outage should have sent documents to the spool"
        assert list((mlops_home / "spool").glob("predictions-*")), "spool file under MLOPS_HOME"

        # Replay after recovery, while the API keeps running.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            text = httpx.get(f"{server.url}/metrics").text
            if (
                metric_value(text, "mlops_prediction_log_spooled") == 0
                and metric_value(text, "mlops_prediction_log_queue") == 0
                and predictions.count_documents({}) >= len(ids)
            ):
                break
            time.sleep(0.25)
        assert predictions.count_documents({}) == len(ids)
        stored = {d["_id"] for d in predictions.find({}, {"_id": 1})}
        assert stored == set(ids)

        server.stop()  # shutdown flush: nothing more, nothing less
        assert predictions.count_documents({}) == len(ids)
    finally:
        mongo.stop()


async def _load_through_outage(url: str, mongo: MongoServer) -> tuple[list[str], list[int], dict]:
    rows = churn_records(300, seed=41)
    ids: list[str] = []
    statuses: list[int] = []
    during: dict = {"spooled": 0.0}
    stop = asyncio.Event()

    async def worker(client: httpx.AsyncClient, k: int) -> None:
        i = k
        while not stop.is_set():
            size = 1 + (i % 3)  # one-row and small-batch requests
            batch = [rows[(i + j) % len(rows)] for j in range(size)]
            try:
                r = await client.post("/predict", json=batch if size > 1 else batch[0])
            except httpx.HTTPError:
                statuses.append(0)
                continue
            statuses.append(r.status_code)
            if r.status_code == 200:
                ids.extend(r.json()["prediction_ids"])
            i += CONCURRENCY

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        workers = [asyncio.create_task(worker(client, k)) for k in range(CONCURRENCY)]
        await asyncio.sleep(3)
        await asyncio.to_thread(mongo.stop)
        down_at = time.monotonic()
        while time.monotonic() - down_at < OUTAGE_SECONDS:
            text = (await client.get("/metrics")).text
            during["spooled"] = max(
                during["spooled"], metric_value(text, "mlops_prediction_log_spooled")
            )
            await asyncio.sleep(0.5)
        await asyncio.to_thread(mongo.start)
        await asyncio.sleep(3)
        stop.set()
        await asyncio.gather(*workers)
    return ids, statuses, during
