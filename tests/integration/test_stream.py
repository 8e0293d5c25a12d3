"""Stream serving against real servers on loopback: Kinesis (moto_server) with a 2-shard input
stream, the MongoDB-wire server (nx-27017), and `mlops stream` as a real process, so that it can
be SIGKILLed and SIGTERMed. One consumer serves the whole module (its start, a model load, is
the expensive part); each test puts records of its own and follows them by sequence number."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from lifecycle.core.waiting import wait_until
from lifecycle.stores import registry
from lifecycle.stores.documents import STREAM_CHECKPOINTS
from tests.fixtures.kinesis import AWS_ENV, REGION, Feeder, StreamReader, kinesis
from tests.fixtures.serving import churn_records, metric_value
from tests.fixtures.training import register_copy

pytestmark = pytest.mark.integration

AWS = Path(sys.executable).parent / "aws"  # AWS CLI v1, a dev dependency

# Bounds for a loaded 2-core machine: the consumer moves ~1,000 records/s through moto_server
# when idle; these waits end as soon as their condition holds.
START_SECONDS = 120.0  # imports, the model's download and smoke test, under load
FLOW_SECONDS = 120.0


def _key(shard: str, seq: str) -> tuple[str, str]:
    return shard, seq


def _outputs_for(records: list[dict], placed: set[tuple[str, str]]) -> list[dict]:
    return [r for r in records if (r["shard_id"], r["sequence_number"]) in placed]


def _covered(placed: list[tuple[str, str]]):
    wanted = set(placed)

    def done(records: list[dict]) -> bool:
        return {(r["shard_id"], r["sequence_number"]) for r in records} >= wanted

    return done


def _log(consumer: Any) -> Any:
    env = consumer.env
    return MongoClient(env["MONGO_URI"], serverSelectionTimeoutMS=5000)[env["MLOPS_MONGO_DB"]]


def _log_count(consumer: Any, placed: list[tuple[str, str]]) -> int:
    request_ids = [f"{shard}:{seq}" for shard, seq in placed]
    return _log(consumer)["predictions"].count_documents({"request_id": {"$in": request_ids}})


@pytest.fixture(scope="module")
def outputs(stream_streams) -> StreamReader:
    return StreamReader(stream_streams.endpoint, stream_streams.out)


@pytest.fixture(scope="module")
def dead_letters(stream_streams) -> StreamReader:
    return StreamReader(stream_streams.endpoint, stream_streams.dlq)


def test_stream_5000_records_predicted_as_predict_and_logged_once(
    stream_consumer, stream_streams, outputs, api_in_process
) -> None:
    rows = churn_records(5000, seed=101)
    # Put while the consumer is still starting: a shard without a checkpoint starts at
    # TRIM_HORIZON, so nothing put before it is ready is missed.
    placed = stream_streams.put(rows)
    assert {shard for shard, _ in placed} == {"shardId-000000000000", "shardId-000000000001"}
    expected = []
    for i in range(0, 5000, 400):  # the in-process API's MLOPS_MAX_BATCH
        body = api_in_process.post("/predict", json=rows[i : i + 400]).json()
        expected += list(zip(body["predictions"], body["probabilities"], strict=True))
    records = outputs.wait_for("5,000 outputs", _covered(placed), START_SECONDS + FLOW_SECONDS)
    mine = _outputs_for(records, set(placed))
    assert len(mine) == 5000
    by_input = {(r["shard_id"], r["sequence_number"]): r for r in mine}
    for (shard, seq), (prediction, probabilities) in zip(placed, expected, strict=True):
        out = by_input[(shard, seq)]
        assert out["prediction"] == prediction
        assert out["probabilities"] == pytest.approx(probabilities)
        assert out["model_version"] == "1" and out["prediction_id"]
    assert len({r["prediction_id"] for r in mine}) == 5000
    # Log documents arrive through the journal and the shipper: within a flush or two.
    wait_until(lambda: _log_count(stream_consumer, placed), "5,000 log documents", FLOW_SECONDS,
               interval=0.5, done=lambda n: n >= 5000)  # fmt: skip
    assert _log_count(stream_consumer, placed) == 5000
    doc = _log(stream_consumer)["predictions"].find_one({"_id": mine[0]["prediction_id"]})
    assert doc["endpoint"] == "kinesis" and doc["features"] == rows[placed.index(
        (mine[0]["shard_id"], mine[0]["sequence_number"]))]  # fmt: skip


def _bad_payloads() -> list[Any]:
    good = churn_records(1, seed=5)[0]
    unknown = {**good, "gender": "X"}
    missing = {k: v for k, v in good.items() if k != "credit_limit"}
    big = [good] * 20  # valid JSON, but over MLOPS_STREAM_MAX_RECORD_BYTES (4096)
    kinds = [b"{not json", unknown, missing, big, b"\xff\xfe", [good, "text"]]
    return [kinds[i % len(kinds)] for i in range(50)]


def test_stream_bad_records_become_dead_letters_and_the_consumer_goes_on(
    stream_consumer, stream_streams, outputs, dead_letters
) -> None:
    stream_consumer.wait_ready(START_SECONDS)
    bad = stream_streams.put(_bad_payloads())
    good = stream_streams.put([churn_records(3, seed=9)])  # one record holding three rows
    letters = dead_letters.wait_for("50 dead letters", _covered(bad), FLOW_SECONDS)
    mine = _outputs_for(letters, set(bad))
    assert len(mine) == 50
    reasons = defaultdict(list)
    for letter in mine:
        reasons[letter["reason"]].append(letter["error"])
        assert (
            letter["data"] and letter["partition_key"] and letter["stream"] == stream_streams.name
        )
    assert set(reasons) == {"json", "validation", "size"}
    assert all("not valid JSON" in e for e in reasons["json"])
    assert any(e.startswith("gender: unknown category 'X'") for e in reasons["validation"])
    assert any(e.startswith("credit_limit: missing feature") for e in reasons["validation"])
    assert all("over the limit of 4096 bytes" in e for e in reasons["size"])
    records = outputs.wait_for("the good record's 3 outputs", _covered(good), FLOW_SECONDS)
    assert sorted(r["row"] for r in _outputs_for(records, set(good))) == [0, 1, 2]
    assert stream_consumer.running()
    metrics = stream_consumer.metrics()
    assert metric_value(metrics, "mlops_stream_dead_letters_total") >= 50
    # MLOPS_UNSEEN_CATEGORY=reject (the default): dead-lettered, and counted by feature.
    assert metric_value(metrics, "mlops_unseen_category_total", feature="gender") >= 1
    assert metric_value(metrics, "mlops_stream_records_in_total") >= 5051
    assert "mlops_stream_lag_seconds{" in metrics


def _aws_cli_put(endpoint: str, stream: str, data: str, home: Path) -> tuple[str, str]:
    """`aws kinesis put-record` with the project's AWS CLI (v1, from PyPI); (shard, sequence)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENV, HOME=str(home), AWS_CONFIG_FILE=str(home / "config"),
               AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"))  # fmt: skip
    command = [
        str(AWS), "kinesis", "put-record", "--endpoint-url", endpoint, "--region", REGION,
        "--stream-name", stream, "--partition-key", "1", "--data", data, "--output", "json",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    return answer["ShardId"], answer["SequenceNumber"]


def test_stream_answers_base64_data_put_with_aws_cli_v1(
    stream_consumer, stream_streams, outputs, api_in_process, tmp_path
) -> None:
    stream_consumer.wait_ready(START_SECONDS)
    row = churn_records(1, seed=17)[0]
    data = base64.b64encode(json.dumps(row).encode()).decode()  # as the docs tell users to
    shard, seq = _aws_cli_put(stream_streams.endpoint, stream_streams.name, data, tmp_path)
    # AWS CLI v1 put the base64 text itself (v2 would have put the JSON it decodes to).
    client = kinesis(stream_streams.endpoint)
    iterator = client.get_shard_iterator(
        StreamName=stream_streams.name, ShardId=shard,
        ShardIteratorType="AT_SEQUENCE_NUMBER", StartingSequenceNumber=seq,
    )["ShardIterator"]  # fmt: skip
    assert client.get_records(ShardIterator=iterator, Limit=1)["Records"][0]["Data"] == (
        data.encode()
    )
    records = outputs.wait_for("the AWS CLI output", _covered([(shard, seq)]), FLOW_SECONDS)
    [out] = _outputs_for(records, {(shard, seq)})
    expected = api_in_process.post("/predict", json=row).json()
    assert out["prediction"] == expected["predictions"][0] and out["row"] == 0
    metrics = stream_consumer.metrics()
    assert metric_value(metrics, "mlops_stream_base64_records_total", shard_id=shard) >= 1
    doc = wait_until(
        lambda: _log(stream_consumer)["predictions"].find_one({"_id": out["prediction_id"]}),
        "the AWS CLI record's log document",
        FLOW_SECONDS,
        interval=0.5,
    )
    assert doc["features"] == row  # the decoded JSON, not the base64 text


def test_stream_alias_move_switches_the_outputs_version_with_none_failed(
    stream_consumer, stream_streams, stream_registry, outputs, dead_letters
) -> None:
    stream_consumer.wait_ready(START_SECONDS)
    second = register_copy(stream_registry, "1")
    # 400 rows/s until the new version answers (a load: ~2 s idle, ~15 s on a loaded machine).
    feeder = Feeder(stream_streams, churn_records(400, seed=12), 40, 0.1, total=40_000)
    feeder.start()
    wait_until(lambda: len(feeder.placed), "the feeder to start", 30)
    registry.promote(second, stream_registry)
    outputs.wait_for(
        f"outputs from version {second}",
        lambda rs: any(r["model_version"] == second for r in _outputs_for(rs, set(feeder.placed))),
        FLOW_SECONDS,
    )
    placed = feeder.finish()
    records = outputs.wait_for("every input's output", _covered(placed), FLOW_SECONDS)
    mine = _outputs_for(records, set(placed))
    assert {r["model_version"] for r in mine} == {"1", second}
    # per shard, in sequence order: once the new version answered, the old one never again
    by_shard: dict[str, list[dict]] = defaultdict(list)
    for r in mine:
        by_shard[r["shard_id"]].append(r)
    for rows in by_shard.values():
        versions = [
            r["model_version"] for r in sorted(rows, key=lambda r: int(r["sequence_number"]))
        ]
        first_new = versions.index(second) if second in versions else len(versions)
        assert set(versions[first_new:]) <= {second}
    assert not _outputs_for(dead_letters.poll(), set(placed))


def test_stream_sigkill_then_restart_loses_nothing_and_logs_each_record_once(
    stream_consumer, stream_streams, outputs
) -> None:
    stream_consumer.wait_ready(START_SECONDS)
    total = 2000
    feeder = Feeder(stream_streams, churn_records(total, seed=77), 50, 0.05, total=total)
    feeder.start()
    # Halfway: some of this test's inputs have outputs, and the feeder is still putting more.
    seen = outputs.wait_for(
        "outputs for a third of the inputs",
        lambda rs: len(_outputs_for(rs, set(feeder.placed))) >= total // 3,
        FLOW_SECONDS,
    )
    stream_consumer.kill()
    at_kill = len(_outputs_for(seen, set(feeder.placed)))
    placed = feeder.finish(halt=False)
    assert len(placed) == total and at_kill < total
    stream_consumer.start()
    records = outputs.wait_for("an output for every input", _covered(placed), FLOW_SECONDS)
    assert _covered(placed)(records)
    wait_until(lambda: _log_count(stream_consumer, placed), f"{total} log documents",
               FLOW_SECONDS, interval=0.5, done=lambda n: n >= total)  # fmt: skip
    assert _log_count(stream_consumer, placed) == total


def test_stream_sigterm_checkpoints_the_last_batch_and_exits_0(
    stream_consumer, stream_streams, outputs
) -> None:
    stream_consumer.wait_ready(START_SECONDS)
    feeder = Feeder(stream_streams, churn_records(500, seed=55), 50, 0.05, total=20_000)
    feeder.start()
    outputs.wait_for(
        "outputs of this test's inputs",
        lambda rs: len(_outputs_for(rs, set(feeder.placed))) >= 200,
        FLOW_SECONDS,
    )
    code = stream_consumer.terminate(60)
    placed = feeder.finish()
    assert code == 0, stream_consumer.logs()
    # Outputs stop exactly at each shard's checkpoint: the batch in flight finished and was
    # checkpointed, and nothing was published past it (its PutRecords returned before exit).
    records = outputs.poll()
    checkpoints = {
        doc["shard_id"]: doc["sequence_number"]
        for doc in _log(stream_consumer)[STREAM_CHECKPOINTS].find({"stream": stream_streams.name})
    }
    assert set(checkpoints) == {"shardId-000000000000", "shardId-000000000001"}
    last_out: dict[str, int] = defaultdict(int)
    for r in records:
        last_out[r["shard_id"]] = max(last_out[r["shard_id"]], int(r["sequence_number"]))
    for shard, seq in checkpoints.items():
        assert last_out[shard] == int(seq), (shard, last_out[shard], seq)
    done = _covered([p for p in placed if int(p[1]) <= int(checkpoints[p[0]])])
    assert done(records)
    assert "stopped after" in stream_consumer.logs()
