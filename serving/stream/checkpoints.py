"""Per-shard checkpoints in MongoDB `stream_checkpoints`: the last sequence number of a shard
whose outputs (and dead letters) Kinesis accepted. The consumer writes one only after that, so
a restart resumes after the checkpoint and replays at most the batch that was in flight."""

from __future__ import annotations

from pymongo.collection import Collection

from lifecycle.core.times import utcnow
from lifecycle.stores.documents import StreamCheckpointDocument
from lifecycle.stores.prediction_store import PredictionStore


class Checkpoints:
    """Read and write the shards' positions of one input stream."""

    def __init__(self, store: PredictionStore, stream: str) -> None:
        self.collection: Collection = store.stream_checkpoints
        self.stream = stream

    def key(self, shard_id: str) -> str:
        return f"{self.stream}/{shard_id}"

    def load(self) -> dict[str, StreamCheckpointDocument]:
        """shard id → its checkpoint, for every shard of the stream that has one."""
        found = self.collection.find({"stream": self.stream})
        return {doc["shard_id"]: doc for doc in found}

    def save(self, shard_id: str, sequence_number: str | None, ended: bool = False) -> None:
        document = StreamCheckpointDocument(
            _id=self.key(shard_id),
            stream=self.stream,
            shard_id=shard_id,
            sequence_number=sequence_number,
            ended=ended,
            updated_at=utcnow(),
        )
        self.collection.replace_one({"_id": document["_id"]}, document, upsert=True)
