"""Kinesis through boto3: the client, the shard list, and publishing with PutRecords.

Throttling (`ProvisionedThroughputExceededException`, 5xx) is retried by botocore itself, in
the retry mode the settings name (`standard` or `adaptive`, which also paces the client). What
botocore cannot retry is a PutRecords answer of 200 that refused some entries
(`FailedRecordCount`): `put_all` re-sends exactly those, with tenacity's backoff between rounds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypedDict

from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_exponential_jitter

from lifecycle.core.errors import LifecycleError
from lifecycle.core.settings import Settings

log = logging.getLogger(__name__)

# PutRecords limits (Kinesis service quotas): entries per call, and bytes per call (data plus
# partition keys).
MAX_ENTRIES = 500
MAX_REQUEST_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024  # one record's data plus its partition key


class StreamError(LifecycleError):
    """Kinesis cannot be used as configured (stream missing, no credentials, outputs refused)."""


class StreamMissingError(StreamError):
    """The input stream is gone: the consumer cannot go on."""


class Entry(TypedDict):
    """One PutRecords entry."""

    Data: bytes
    PartitionKey: str


def kinesis_client(settings: Settings, endpoint_url: str | None = None, **extra: Any) -> Any:
    """A Kinesis client; credentials, region and endpoint from boto3's usual AWS settings
    (`AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_KINESIS` for a local server)."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": settings.stream_retry_mode, "max_attempts": settings.stream_max_attempts},
        connect_timeout=5,
        read_timeout=30,
    )
    try:
        return boto3.client("kinesis", endpoint_url=endpoint_url, config=config, **extra)
    except Exception as exc:  # no region, a malformed endpoint: say which, in one line
        raise StreamError(f"Kinesis client: {describe_failure(exc)}") from exc


def describe_failure(exc: Exception) -> str:
    """One line for a boto3/botocore error (no credentials, unreachable endpoint, ...)."""
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a profile)"
    if isinstance(exc, NoRegionError):
        return "no AWS region: set AWS_DEFAULT_REGION (e.g. us-east-1)"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', exc)}"
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def list_shards(client: Any, stream: str) -> list[dict[str, Any]]:
    """Every shard of `stream`, open and closed (ListShards, all pages)."""
    shards: list[dict[str, Any]] = []
    response = client.list_shards(StreamName=stream)
    while True:
        shards.extend(response["Shards"])
        token = response.get("NextToken")
        if not token:
            return shards
        response = client.list_shards(NextToken=token)  # a token excludes the stream name


def ensure_streams(client: Any, names: Iterable[str], shards: int = 1) -> list[str]:
    """Create each stream that does not exist yet and wait until all are ACTIVE; returns the
    names it created."""
    created = []
    for name in names:
        try:
            client.create_stream(StreamName=name, ShardCount=shards)
            created.append(name)
        except client.exceptions.ResourceInUseException:
            pass  # it exists already
    waiter = client.get_waiter("stream_exists")
    for name in names:
        waiter.wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    return created


def chunks(entries: Sequence[Entry]) -> Iterable[list[Entry]]:
    """PutRecords-sized chunks: at most 500 entries and 5 MiB each."""
    chunk: list[Entry] = []
    size = 0
    for entry in entries:
        n = len(entry["Data"]) + len(entry["PartitionKey"].encode())
        if chunk and (len(chunk) == MAX_ENTRIES or size + n > MAX_REQUEST_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += n
    if chunk:
        yield chunk


def put_once(client: Any, stream: str, entries: Sequence[Entry]) -> tuple[list[Entry], str]:
    """One round of PutRecords over `entries`: the entries Kinesis refused, and why."""
    failed: list[Entry] = []
    reason = ""
    for chunk in chunks(entries):
        response = client.put_records(StreamName=stream, Records=chunk)
        if not response.get("FailedRecordCount"):
            continue
        for entry, result in zip(chunk, response["Records"], strict=True):
            if "ErrorCode" in result:
                failed.append(entry)
                reason = f"{result['ErrorCode']}: {result.get('ErrorMessage', '')}".strip()
    return failed, reason


def put_all(
    client: Any,
    stream: str,
    entries: Sequence[Entry],
    attempts: int = 8,
    wait: Callable[..., float] | None = None,
) -> None:
    """Publish every entry; a partial failure re-sends only the refused entries, up to
    `attempts` rounds with growing pauses. Raises StreamError when some are still refused."""
    left: list[Entry] = list(entries)
    reason = ""

    def round_() -> list[Entry]:
        nonlocal left, reason
        left, reason = put_once(client, stream, left)
        if left:
            log.warning("%s: %d records refused (%s); re-sending them", stream, len(left), reason)
        return left

    def give_up(state: Any) -> None:
        raise StreamError(
            f"stream {stream!r} still refused {len(left)} records after {attempts} rounds: {reason}"
        )

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait or wait_exponential_jitter(initial=0.1, max=5.0),
        retry=retry_if_result(bool),
        retry_error_callback=give_up,
    )
    if entries:
        retrying(round_)
