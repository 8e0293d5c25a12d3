"""The shards of the input stream and where the consumer stands in each.

The shard list is refreshed from ListShards, so resharding is followed: a split or merge closes
shards (they get an `EndingSequenceNumber`) and opens children that name them as parents. A
child is read only once its parents have been read to their end, so a key's records stay in
order across a reshard, as the Kinesis Client Library does it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lifecycle.stores.documents import StreamCheckpointDocument


@dataclass
class Shard:
    """One shard: its parents, its end when closed, and our position in it."""

    shard_id: str
    parents: tuple[str, ...] = ()
    ending: str | None = None  # EndingSequenceNumber, once the shard is closed
    checkpoint: str | None = None  # last sequence number whose outputs Kinesis accepted
    iterator: str | None = None  # None: get one at the checkpoint before the next read
    ended: bool = False
    start: str = "TRIM_HORIZON"  # where to begin without a checkpoint (TRIM_HORIZON | LATEST)
    unsaved: bool = False  # the last checkpoint write failed (MongoDB down): write it again
    next_read: float = 0.0  # monotonic time before which this shard is not read again

    def reached_end(self, next_iterator: str | None) -> bool:
        """A closed shard is done when Kinesis ends its iterator, or when the checkpoint reached
        its ending sequence number (some servers keep handing out iterators)."""
        if next_iterator is None:
            return True
        if self.ending is None:
            return False
        return int(self.checkpoint or 0) >= int(self.ending)


class ShardSet:
    """The shards of one stream by id, merged with their stored checkpoints."""

    def __init__(self) -> None:
        self.shards: dict[str, Shard] = {}

    def update(
        self, listed: list[dict[str, Any]], checkpoints: dict[str, StreamCheckpointDocument]
    ) -> list[str]:
        """Merge a fresh ListShards answer; returns the ids of shards seen for the first time."""
        new = []
        for item in listed:
            shard_id = item["ShardId"]
            ending = item.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
            shard = self.shards.get(shard_id)
            if shard is None:
                parents = tuple(
                    p for p in (item.get("ParentShardId"), item.get("AdjacentParentShardId")) if p
                )
                saved = checkpoints.get(shard_id)
                shard = Shard(shard_id, parents)
                if saved is not None:
                    shard.checkpoint = saved["sequence_number"]
                    shard.ended = saved["ended"]
                self.shards[shard_id] = shard
                new.append(shard_id)
            shard.ending = ending
        return new

    def readable(self) -> list[Shard]:
        """Shards to read now: not ended, and every parent we know of has ended."""
        out = []
        for shard in self.shards.values():
            if shard.ended:
                continue
            parents = [self.shards[p] for p in shard.parents if p in self.shards]
            if all(parent.ended for parent in parents):
                out.append(shard)
        return out
