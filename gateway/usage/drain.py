"""Draining the usage streams (one per shard, gateway/redis_keys.py) into PostgreSQL, exactly once,
whatever dies on the way.

A consumer group hands each stream entry to one drain. A drain stores a batch (events and
rollups, one transaction), then acknowledges and deletes its entries. If it dies before that, the
entries stay pending; the next drain claims entries left pending longer than
USAGE_CLAIM_IDLE_SECONDS and stores them again, which the unique request id makes harmless.

Nothing in an entry can stall the stream: usage_ingest cleans or dead-letters what it cannot
store and stores the rest, and an entry claimed more than USAGE_MAX_DELIVERIES times (whatever
keeps killing the drains that take it) becomes a dead letter instead of being tried again.
"""

from __future__ import annotations

import os
import socket
import time

import redis
from django.conf import settings

from gateway.redis_clients import SyncClient, sync_gateway_redis
from gateway.redis_keys import all_shards, usage_stream_key
from gateway.usage.clean import DeadLetter, entry_payload
from gateway.usage.services import usage_ingest

GROUP = "aggregators"


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def ensure_group(client: SyncClient, stream: str) -> None:
    try:
        client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def drain_usage_stream(*, client: SyncClient | None = None, time_budget_seconds: float = 10.0) -> int:
    """Store what the usage streams hold, batch by batch, for at most `time_budget_seconds`."""
    client = client or sync_gateway_redis()
    deadline = time.monotonic() + time_budget_seconds
    stored = 0
    for shard in all_shards():
        stored += _drain_stream(client, usage_stream_key(shard), deadline)
    return stored


def _drain_stream(client: SyncClient, stream: str, deadline: float) -> int:
    ensure_group(client, stream)
    consumer = consumer_name()
    stored = 0
    while time.monotonic() < deadline:
        if claimed := _claim_abandoned(client, stream, consumer):
            stored += _store(client, stream, claimed, worn_out=_delivered_too_often(client, stream, claimed, consumer))
        elif entries := _read_new(client, stream, consumer):
            stored += _store(client, stream, entries, worn_out={})  # a first delivery: never worn out
        else:
            break
    return stored


Entry = tuple[bytes, dict[bytes, bytes]]


def _claim_abandoned(client: SyncClient, stream: str, consumer: str) -> list[Entry]:
    idle_ms = int(settings.USAGE_CLAIM_IDLE_SECONDS * 1000)
    _, entries, _ = client.xautoclaim(
        stream, GROUP, consumer, idle_ms, start_id="0-0", count=settings.USAGE_DRAIN_BATCH_SIZE
    )
    return [(entry_id, fields) for entry_id, fields in entries if fields]


def _read_new(client: SyncClient, stream: str, consumer: str) -> list[Entry]:
    response = client.xreadgroup(GROUP, consumer, {stream: ">"}, count=settings.USAGE_DRAIN_BATCH_SIZE)
    return response[0][1] if response else []


def _store(client: SyncClient, stream: str, entries: list[Entry], *, worn_out: dict[bytes, int]) -> int:
    stored = usage_ingest(
        entries=[fields for entry_id, fields in entries if entry_id not in worn_out],
        dead_letters=[
            DeadLetter(entry_payload(fields), f"delivered {worn_out[entry_id]} times without being stored")
            for entry_id, fields in entries
            if entry_id in worn_out
        ],
    )
    ids = [entry_id for entry_id, _ in entries]
    # Only after the commit: a crash before this leaves the entries pending, to be claimed again.
    with client.pipeline(transaction=False) as pipe:
        pipe.xack(stream, GROUP, *ids)
        pipe.xdel(stream, *ids)
        pipe.execute()
    return stored


def _delivered_too_often(client: SyncClient, stream: str, entries: list[Entry], consumer: str) -> dict[bytes, int]:
    """Claimed entries handed out more than USAGE_MAX_DELIVERIES times: whatever keeps failing them stops here."""
    first, last = entries[0][0], entries[-1][0]
    pending = client.xpending_range(stream, GROUP, min=first, max=last, count=len(entries), consumername=consumer)
    return {
        item["message_id"]: item["times_delivered"]
        for item in pending
        if item["times_delivered"] > settings.USAGE_MAX_DELIVERIES
    }
