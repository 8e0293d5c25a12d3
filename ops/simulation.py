"""Traffic simulator: calls the API at a steady rate with synthetic churn customers, follows a
drift schedule and a concept-drift schedule, and sends delayed ground truth for a share of the
predictions (labelled by the label model in force when the row was generated).

Used by `mlops simulate`, the demo and the benchmarks. Requests are bounded in count and time:
`rate * duration` requests, then it stops by itself.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from lifecycle.data import synthetic


@dataclass(frozen=True)
class DriftSchedule:
    """Piecewise-constant drift (or concept) over time: `0.8`, or `0:0,60:0.8` (seconds:value,
    ...)."""

    steps: tuple[tuple[float, float], ...]

    @classmethod
    def parse(cls, text: str) -> DriftSchedule:
        text = text.strip()
        try:
            if ":" not in text:
                return cls(((0.0, float(text)),))
            steps = []
            for part in text.split(","):
                at, value = part.split(":")
                steps.append((float(at), float(value)))
        except ValueError:
            raise ValueError(
                f"drift schedule {text!r}: expected a number or 'seconds:drift,...'"
            ) from None
        steps.sort()
        if steps[0][0] > 0:
            steps.insert(0, (0.0, 0.0))
        return cls(tuple(steps))

    def at(self, elapsed: float) -> float:
        value = self.steps[0][1]
        for start, drift in self.steps:
            if elapsed >= start:
                value = drift
        return value


@dataclass
class SimulationStats:
    """What a simulation sent and got back."""

    requests: int = 0
    ok: int = 0
    failed: int = 0
    rows: int = 0
    statuses: Counter = field(default_factory=Counter)
    versions: Counter = field(default_factory=Counter)
    version_order: list[str] = field(default_factory=list)
    feedback_sent: int = 0
    feedback_failed: int = 0
    correct: int = 0
    labelled: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def observe_version(self, version: str, rows: int) -> None:
        self.versions[version] += rows
        if not self.version_order or self.version_order[-1] != version:
            self.version_order.append(version)

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    def line(self, elapsed: float, drift: float) -> str:
        versions = ",".join(f"v{v}:{n}" for v, n in sorted(self.versions.items()))
        return (
            f"t={elapsed:5.1f}s requests={self.requests} ok={self.ok} failed={self.failed} "
            f"drift={drift:.2f} versions=[{versions}] feedback={self.feedback_sent}"
        )


class RowSource:
    """Synthetic customers with their true labels, generated in blocks per (drift, concept)."""

    def __init__(self, seed: int, block: int = 512) -> None:
        self.seed = seed
        self.block = block
        self.buffer: list[tuple[dict[str, Any], Any]] = []
        self.level: tuple[float, float] | None = None
        self.blocks = 0

    def take(self, n: int, drift: float, concept: float = 0.0) -> list[tuple[dict[str, Any], Any]]:
        if (drift, concept) != self.level:
            self.buffer.clear()
            self.level = (drift, concept)
        while len(self.buffer) < n:
            frame = synthetic.generate_churn(self.block, self.seed + self.blocks, drift, concept)
            self.blocks += 1
            labels = frame.pop(synthetic.TARGET).tolist()
            self.buffer.extend(zip(frame.to_dict("records"), labels, strict=True))
        rows, self.buffer = self.buffer[:n], self.buffer[n:]
        return rows


class _Traffic:
    """One simulation's client side: predictions out, labels back after their delay."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        feedback_share: float,
        feedback_delay: float,
        seed: int,
        concurrency: int,
    ) -> None:
        self.client = client
        self.feedback_share = feedback_share
        self.feedback_delay = feedback_delay
        self.rng = random.Random(seed)
        self.limit = asyncio.Semaphore(concurrency)
        self.pending: list[tuple[float, str, Any]] = []  # (due time, prediction id, label), a heap
        self.stats = SimulationStats()

    async def predict(self, records: list[tuple[dict[str, Any], Any]]) -> None:
        stats = self.stats
        async with self.limit:
            t0 = time.perf_counter()
            try:
                response = await self.client.post("/predict", json=[r for r, _ in records])
            except httpx.HTTPError:
                stats.failed += 1
                stats.statuses["error"] += 1
                return
            stats.latencies_ms.append((time.perf_counter() - t0) * 1000)
            stats.statuses[response.status_code] += 1
            if response.status_code != 200:
                stats.failed += 1
                return
            body = response.json()
            stats.ok += 1
            stats.rows += len(records)
            stats.observe_version(str(body["model_version"]), len(records))
            self._label_later(records, body)

    def _label_later(self, records: list[tuple[dict[str, Any], Any]], body: dict) -> None:
        due = time.monotonic() + self.feedback_delay
        for (_, label), pid, predicted in zip(
            records, body["prediction_ids"], body["predictions"], strict=True
        ):
            if self.rng.random() < self.feedback_share:
                heapq.heappush(self.pending, (due, pid, label))
                self.stats.labelled += 1
                self.stats.correct += int(predicted == label)

    def labels_due(self) -> bool:
        return bool(self.pending) and self.pending[0][0] <= time.monotonic()

    async def send_feedback(self, due_before: float) -> None:
        items = []
        while self.pending and self.pending[0][0] <= due_before:
            _, pid, label = heapq.heappop(self.pending)
            items.append({"prediction_id": pid, "actual": label})
        for i in range(0, len(items), 500):
            chunk = items[i : i + 500]
            try:
                response = await self.client.post("/feedback", json=chunk)
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                self.stats.feedback_sent += len(chunk)
            else:
                self.stats.feedback_failed += len(chunk)


async def simulate(
    url: str,
    rate: float = 20.0,
    duration: float = 30.0,
    drift: DriftSchedule | None = None,
    feedback_share: float = 0.3,
    feedback_delay: float = 5.0,
    batch: int = 1,
    seed: int = 1000,
    api_key: str | None = None,
    concurrency: int = 32,
    on_tick: Callable[[SimulationStats, float, float], None] | None = None,
    concept: DriftSchedule | None = None,
) -> SimulationStats:
    """Send `rate` requests/s of `batch` rows for `duration` s; returns the stats."""
    drift = drift or DriftSchedule(((0.0, 0.0),))
    concept = concept or DriftSchedule(((0.0, 0.0),))
    rows = RowSource(seed)
    headers = {"X-API-Key": api_key} if api_key else {}
    started = time.monotonic()
    total = max(1, round(rate * duration))
    async with httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=30.0) as client:
        traffic = _Traffic(client, feedback_share, feedback_delay, seed, concurrency)
        tasks: set[asyncio.Task] = set()
        last_tick = 0.0
        for i in range(total):
            # Open-loop pacing: request i leaves at i / rate whatever the answers' latency.
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elapsed = time.monotonic() - started
            records = rows.take(batch, drift.at(elapsed), concept.at(elapsed))
            task = asyncio.create_task(traffic.predict(records))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            traffic.stats.requests += 1
            if traffic.labels_due():
                await traffic.send_feedback(time.monotonic())
            if on_tick is not None and elapsed - last_tick >= 1.0:
                last_tick = elapsed
                on_tick(traffic.stats, elapsed, drift.at(elapsed))
        if tasks:
            await asyncio.gather(*tasks)
        # Ground truth still "in the post" arrives now: the run is bounded in time.
        await traffic.send_feedback(float("inf"))
    if on_tick is not None:
        elapsed = time.monotonic() - started
        on_tick(traffic.stats, elapsed, drift.at(elapsed))
    return traffic.stats


def simulate_kinesis(
    client: Any,
    stream: str,
    rate: float = 20.0,
    duration: float = 30.0,
    drift: DriftSchedule | None = None,
    batch: int = 1,
    seed: int = 1000,
    on_tick: Callable[[SimulationStats, float, float], None] | None = None,
) -> SimulationStats:
    """The same synthetic traffic into a Kinesis stream: `rate` records/s for `duration` s,
    each a feature object (`batch` 1) or a list of `batch` of them, keyed by a customer id.
    Records due together go out in one PutRecords every 0.1 s; no labels (a stream client
    gets no prediction ids back: they are derived by the consumer)."""
    from serving.stream.kinesis import Entry, put_once

    drift = drift or DriftSchedule(((0.0, 0.0),))
    rows, stats = RowSource(seed), SimulationStats()
    total = max(1, round(rate * duration))
    started, last_tick = time.monotonic(), 0.0
    while stats.requests < total:
        elapsed = time.monotonic() - started
        due = min(total, int(elapsed * rate) + 1) - stats.requests
        level = drift.at(elapsed)
        entries = []
        for i in range(stats.requests, stats.requests + due):
            records = [r for r, _ in rows.take(batch, level)]
            payload = records[0] if batch == 1 else records
            entries.append(Entry(Data=orjson.dumps(payload), PartitionKey=f"customer-{i}"))
        failed, _ = put_once(client, stream, entries)
        stats.requests += due
        stats.failed += len(failed)
        stats.ok += due - len(failed)
        stats.rows += (due - len(failed)) * batch
        if on_tick is not None and elapsed - last_tick >= 1.0:
            last_tick = elapsed
            on_tick(stats, elapsed, level)
        time.sleep(0.1)  # paces the open-loop sender: what is due every 0.1 s goes out at once
    if on_tick is not None:
        on_tick(stats, time.monotonic() - started, drift.at(time.monotonic() - started))
    return stats
