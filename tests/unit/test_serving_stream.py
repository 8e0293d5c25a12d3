"""The stream consumer's parts without servers: PutRecords chunking and the re-send of refused
entries, shard order across a reshard, and a batch's decoding into outputs, log entries and
dead letters (with a tiny real XGBoost model)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pytest

from lifecycle.model.predictor import Feature, FeatureSpec, Predictor
from serving.holder import LoadedModel
from serving.stream import records as batches
from serving.stream.kinesis import MAX_ENTRIES, StreamError, chunks, put_all
from serving.stream.shards import ShardSet
from serving.validation import RecordValidator


class RefusingKinesis:
    """PutRecords that refuses chosen entries a number of times. moto_server never refuses an
    entry (it has no throughput limits), so partial failures can only be played here."""

    def __init__(self, refuse: dict[bytes, int]) -> None:
        self.refuse = dict(refuse)  # data -> how many more times to refuse it
        self.calls: list[list[bytes]] = []
        self.accepted: list[bytes] = []

    def put_records(self, StreamName: str, Records: list[dict]) -> dict[str, Any]:
        self.calls.append([r["Data"] for r in Records])
        results, failed = [], 0
        for record in Records:
            if self.refuse.get(record["Data"], 0) > 0:
                self.refuse[record["Data"]] -= 1
                failed += 1
                results.append({"ErrorCode": "ProvisionedThroughputExceededException"})
            else:
                self.accepted.append(record["Data"])
                results.append({"SequenceNumber": "1", "ShardId": "shardId-000000000000"})
        return {"FailedRecordCount": failed, "Records": results}


def _entries(n: int, size: int = 10) -> list[dict]:
    return [{"Data": f"{i:0{size}d}".encode(), "PartitionKey": str(i)} for i in range(n)]


def test_chunks_keep_putrecords_limits_of_500_entries_and_5_mib() -> None:
    assert [len(c) for c in chunks(_entries(1201))] == [MAX_ENTRIES, MAX_ENTRIES, 201]
    big = _entries(12, size=1_000_000)  # 12 MB of data: at most 5 per 5 MiB request
    assert [len(c) for c in chunks(big)] == [5, 5, 2]


def test_put_all_resends_only_the_refused_entries() -> None:
    entries = _entries(700)
    client = RefusingKinesis({entries[3]["Data"]: 2, entries[650]["Data"]: 1})
    put_all(client, "out", entries, attempts=5, wait=lambda state: 0)
    assert sorted(client.accepted) == sorted(e["Data"] for e in entries)  # each exactly once
    assert [len(c) for c in client.calls] == [500, 200, 2, 1]


def test_put_all_gives_up_naming_the_stream_and_the_error() -> None:
    entries = _entries(3)
    client = RefusingKinesis({entries[0]["Data"]: 99})
    with pytest.raises(StreamError, match=r"'out' still refused 1 records after 3 rounds.*Exceed"):
        put_all(client, "out", entries, attempts=3, wait=lambda state: 0)


def _shard(shard_id: str, parents: tuple[str, ...] = (), ending: str | None = None) -> dict:
    item: dict[str, Any] = {"ShardId": shard_id, "SequenceNumberRange": {}}
    if parents:
        item["ParentShardId"] = parents[0]
    if len(parents) > 1:
        item["AdjacentParentShardId"] = parents[1]
    if ending:
        item["SequenceNumberRange"]["EndingSequenceNumber"] = ending
    return item


def test_shard_children_are_read_only_after_their_parents_ended() -> None:
    shards = ShardSet()
    assert shards.update([_shard("a"), _shard("b")], {}) == ["a", "b"]
    # A refresh after a reshard: a was split (child a1), then a1 and b merged into m.
    listed = [_shard("a", ending="10"), _shard("b", ending="7"), _shard("a1", ("a",))]
    listed.append(_shard("m", ("a1", "b")))
    assert shards.update(listed, {}) == ["a1", "m"]
    assert [s.shard_id for s in shards.readable()] == ["a", "b"]
    a, b = shards.shards["a"], shards.shards["b"]
    a.checkpoint = "9"
    assert not a.reached_end("iterator")
    a.checkpoint = "10"
    assert a.reached_end("iterator") and shards.shards["a1"].reached_end(None)
    a.ended = True
    assert [s.shard_id for s in shards.readable()] == ["b", "a1"]
    b.ended = shards.shards["a1"].ended = True
    assert [s.shard_id for s in shards.readable()] == ["m"]


def test_shard_state_comes_back_from_the_stored_checkpoints() -> None:
    shards = ShardSet()
    saved: dict[str, Any] = {
        "a": {"sequence_number": "3", "ended": False},
        "b": {"sequence_number": "7", "ended": True},
    }
    shards.update([_shard("a"), _shard("b", ending="7")], saved)
    assert shards.shards["a"].checkpoint == "3"
    assert [s.shard_id for s in shards.readable()] == ["a"]


@pytest.fixture(scope="module")
def tiny_model() -> LoadedModel:
    import xgboost as xgb

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(x, y), num_boost_round=5
    )
    spec = FeatureSpec(
        (Feature("a", "numeric"), Feature("b", "integer")), "y", "binary", classes=(0, 1)
    )
    return LoadedModel(
        "m", "3", "champion", Predictor(booster, spec), RecordValidator(spec),
        datetime.now(UTC), class_keys=("0", "1"),
    )  # fmt: skip


def _record(data: Any, seq: str) -> dict:
    raw = data if isinstance(data, bytes) else orjson.dumps(data)
    return {"Data": raw, "PartitionKey": f"pk{seq}", "SequenceNumber": seq}


def test_batch_predicts_every_row_once_and_dead_letters_the_rest(tiny_model) -> None:
    good, rows = _record({"a": 1.5, "b": 2}, "1"), _record([{"a": -1, "b": 0}] * 3, "2")
    bad = [
        _record(b"{nope", "3"),
        _record({"a": "x", "b": 1}, "4"),
        _record([{"a": 1.0, "b": 1}] * 200, "5"),  # over 1,000 bytes
        _record([], "6"),
    ]
    decoded = batches.decode([good, *bad, rows], tiny_model, max_rows=100, max_bytes=1000)
    assert decoded.rows == 4 and [d.reason for d in decoded.dead] == [
        "json", "validation", "size", "validation",
    ]  # fmt: skip
    assert decoded.dead[1].error.startswith("a: expected a number; got str 'x'")
    assert "records: empty list" in decoded.dead[3].error
    published = batches.build(decoded, tiny_model, "in", "shard-0", started=0.0)
    outputs = [orjson.loads(e["Data"]) for e in published.outputs]
    assert [(o["sequence_number"], o["row"]) for o in outputs] == [
        ("1", 0), ("2", 0), ("2", 1), ("2", 2),
    ]  # fmt: skip
    assert [e["PartitionKey"] for e in published.outputs] == ["pk1", "pk2", "pk2", "pk2"]
    labels, proba = tiny_model.predict(np.array([[1.5, 2], [-1, 0]], dtype=np.float32))
    assert outputs[0]["prediction"] == labels[0] and outputs[1]["prediction"] == labels[1]
    assert outputs[0]["probabilities"] == pytest.approx(
        dict(zip(("0", "1"), proba[0].tolist(), strict=True))
    )
    assert outputs[0]["prediction_id"] == batches.prediction_id("in", "shard-0", "1", 0)
    assert [e.request_id for e in published.entries] == ["shard-0:1", "shard-0:2"]
    assert published.entries[1].ids == [o["prediction_id"] for o in outputs[1:]]
    assert all(e.endpoint == "kinesis" for e in published.entries)


def test_batch_accepts_base64_text_of_json_as_aws_cli_v1_sends_it(tiny_model) -> None:
    import base64

    row = {"a": 1.5, "b": 2}
    text = base64.b64encode(orjson.dumps(row))
    wrapped = base64.encodebytes(orjson.dumps([row] * 3))  # `base64` wraps lines at 76
    not_json = [
        base64.b64encode(b"not json"),
        base64.b64encode(b"1234"),  # JSON, but neither an object nor a list
        b"eyJh",  # base64 alphabet, decodes to a cut object
        b"{nope",
    ]
    records = [_record(text, "1"), _record(wrapped, "2")]
    records += [_record(d, str(3 + i)) for i, d in enumerate(not_json)]
    decoded = batches.decode(records, tiny_model, max_rows=100, max_bytes=1000)
    assert decoded.rows == 4 and decoded.base64 == 2
    assert [d.reason for d in decoded.dead] == ["json"] * 4
    assert all("not valid JSON" in d.error for d in decoded.dead)
    published = batches.build(decoded, tiny_model, "in", "shard-0", started=0.0)
    assert len(published.outputs) == 4
    # The log keeps the decoded JSON, as if the record had held it.
    assert orjson.loads(published.entries[0].records) == row
    assert orjson.loads(published.entries[1].records) == [row] * 3


@pytest.fixture(scope="module")
def categorical_model() -> LoadedModel:
    """A numeric feature `a` and a categorical `c` seen as "x" and "y" (codes 0 and 1)."""
    import xgboost as xgb

    rng = np.random.default_rng(1)
    x = np.column_stack([rng.normal(size=300), rng.integers(0, 2, 300)]).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0.5).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(x, y), 5)
    spec = FeatureSpec(
        (Feature("a", "numeric"), Feature("c", "categorical", ("x", "y"))), "t", "binary",
        classes=(0, 1),
    )  # fmt: skip
    return LoadedModel(
        "m", "4", "champion", Predictor(booster, spec), RecordValidator(spec),
        datetime.now(UTC), class_keys=("0", "1"),
    )  # fmt: skip


def test_batch_unseen_category_is_a_dead_letter_or_scored_as_missing(categorical_model) -> None:
    from lifecycle.stores import journal

    records = [_record([{"a": 1.0, "c": "x"}, {"a": 0.5, "c": "z"}], "1"), _record({"a": 2}, "2")]
    records[1]["Data"] = orjson.dumps({"a": 2.0, "c": "y"})
    rejected = batches.decode(records, categorical_model, max_rows=100, max_bytes=10_000)
    assert [d.reason for d in rejected.dead] == ["validation"] and rejected.rows == 1
    assert rejected.dead[0].error.startswith("c: unknown category 'z'; expected one of")
    assert rejected.unseen == [{"field": "c", "value": "z"}]  # counted all the same

    scored = batches.decode(records, categorical_model, 100, 10_000, unseen_missing=True)
    assert not scored.dead and scored.rows == 3
    assert scored.unseen == [{"row": 1, "field": "c", "value": "z"}]
    published = batches.build(scored, categorical_model, "in", "s0", started=0.0)
    outputs = [orjson.loads(e["Data"]) for e in published.outputs]
    assert [o.get("unseen") for o in outputs] == [None, {"c": "z"}, None]
    missing = np.array([[0.5, np.nan]], dtype=np.float32)
    _, proba = categorical_model.predict(missing)
    assert outputs[1]["probabilities"]["1"] == pytest.approx(float(proba[0][1]))
    # The log documents say which feature was unseen, after a round trip through the journal.
    line = journal.encode_entry(published.entries[0])
    documents = journal.expand_entry(journal.decode_line(line))
    assert [d.get("unseen") for d in documents] == [None, {"c": "z"}]
    assert documents[1]["features"] == {"a": 0.5, "c": "z"}


def test_batch_file_unseen_category_stops_or_fills_the_unseen_column(
    categorical_model, tmp_path
) -> None:
    import pandas as pd

    from lifecycle.model import batch

    source, output = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame({"a": [1.0, 0.5, 2.0], "c": ["x", "z", "y"]}).to_csv(source, index=False)
    predictor = categorical_model.predictor
    with pytest.raises(batch.BatchFileError, match=r"column c \(row 2\): unknown category 'z'"):
        batch.score_file(predictor, "4", source, output)
    result = batch.score_file(predictor, "4", source, output, unseen_category="missing")
    assert result.rows == 3 and result.unseen == {"c": 1}
    scored = pd.read_csv(output, keep_default_na=False)
    assert list(scored["unseen"]) == ["", '{"c":"z"}', ""]


def test_prediction_ids_are_the_same_on_every_replay() -> None:
    first = batches.prediction_id("in", "shardId-1", "495", 2)
    assert first == batches.prediction_id("in", "shardId-1", "495", 2)
    assert first != batches.prediction_id("in", "shardId-1", "495", 3)


def test_dead_letter_keeps_the_data_as_text_and_cuts_what_kinesis_cannot_hold() -> None:
    letter = batches.DeadLetter(_record(b"\xffnot json", "9"), "json", "data: not valid JSON")
    body = orjson.loads(batches.dead_letter(letter, "in", "s0")["Data"])
    assert body["data"] == "\\xffnot json" and body["sequence_number"] == "9"
    assert body["shard_id"] == "s0" and not body["truncated"]
    huge = batches.DeadLetter(_record(b"\x01" * 900_000, "10"), "size", "data: too big")
    entry = batches.dead_letter(huge, "in", "s0")
    assert len(entry["Data"]) < 1024 * 1024 and orjson.loads(entry["Data"])["truncated"]


def test_make_up_runs_kinesis_and_the_consumer_only_with_mlops_stream(tmp_path) -> None:
    from lifecycle.core.settings import Settings
    from ops.stack import Ports, procfile

    ports = Ports()
    plain = procfile(Settings(MLOPS_HOME=str(tmp_path)), ports, with_nginx=False)
    assert not {"kinesis", "stream"} & {line.split(":")[0] for line in plain.splitlines()}
    text = procfile(Settings(MLOPS_HOME=str(tmp_path), MLOPS_STREAM=True), ports, False)
    lines = dict(line.split(": ", 1) for line in text.splitlines())
    assert lines["kinesis"].endswith("mlops kinesis --port 4567")
    assert "AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:4567 " in lines["stream"]
    assert lines["stream"].endswith("mlops stream --wait 120")


class FlakyCheckpoints:
    """Checkpoints whose MongoDB times out on the first read (as nx-27017 did at load 14)."""

    def __init__(self) -> None:
        self.loads = 0

    def load(self) -> dict:
        from pymongo.errors import ServerSelectionTimeoutError

        self.loads += 1
        if self.loads == 1:
            raise ServerSelectionTimeoutError("127.0.0.1:1: timed out")
        return {}


class OneShardKinesis:
    def list_shards(self, StreamName: str) -> dict:
        return {"Shards": [_shard("shardId-000000000000")]}


def test_consumer_waits_for_its_checkpoints_instead_of_exiting(tmp_path) -> None:
    import threading
    from types import SimpleNamespace

    from lifecycle.core.settings import Settings
    from lifecycle.core.waiting import wait_until
    from serving.metrics import StreamMetrics
    from serving.stream.consumer import StreamConsumer

    settings = Settings(MLOPS_HOME=str(tmp_path))
    holder = SimpleNamespace(current=None)  # no model: nothing is read, only the shard list
    checkpoints = FlakyCheckpoints()
    consumer = StreamConsumer(
        settings,
        holder,
        None,
        StreamMetrics(),
        OneShardKinesis(),
        checkpoints,  # type: ignore[arg-type]
    )
    stop = threading.Event()
    worker = threading.Thread(target=consumer.run, args=(stop,))
    worker.start()
    try:
        # The retry comes after BACKOFF_SECONDS (2 s); 30 s covers a loaded 2-core machine.
        wait_until(lambda: list(consumer.shards.shards), "the shard list", 30)
    finally:
        stop.set()
        worker.join(10)
    assert checkpoints.loads == 2 and not worker.is_alive()
