"""Draining the usage stream into PostgreSQL, exactly once, whatever dies on the way.

A consumer group hands each stream entry to one drain. A drain stores a batch (events and
rollups, one transaction), then acknowledges and deletes its entries. If it dies before that, the
entries stay pending; the next drain claims entries left pending longer than
USAGE_CLAIM_IDLE_SECONDS and stores them again, which the unique request id makes harmless.
"""

from __future__ import annotations

import logging
import os
import socket
import time

import redis
from django.conf import settings

from gateway.usage.record import UsageRecord
from gateway.usage.services import usage_ingest
from gateway.usage.writer import stream_key

logger = logging.getLogger(__name__)

GROUP = "aggregators"


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def ensure_group(client: redis.Redis) -> None:
    try:
        client.xgroup_create(stream_key(), GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def drain_usage_stream(*, client: redis.Redis | None = None, time_budget_seconds: float = 10.0) -> int:
    """Store what the stream holds, batch by batch, for at most `time_budget_seconds`."""
    client = client or redis.Redis.from_url(settings.REDIS_URL)
    ensure_group(client)
    consumer = consumer_name()
    deadline = time.monotonic() + time_budget_seconds
    stored = 0
    while time.monotonic() < deadline:
        entries = _claim_abandoned(client, consumer) or _read_new(client, consumer)
        if not entries:
            break
        stored += _store(client, entries)
    return stored


def _claim_abandoned(client: redis.Redis, consumer: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    idle_ms = int(settings.USAGE_CLAIM_IDLE_SECONDS * 1000)
    _, entries, _ = client.xautoclaim(
        stream_key(), GROUP, consumer, idle_ms, start_id="0-0", count=settings.USAGE_DRAIN_BATCH_SIZE
    )
    return [(entry_id, fields) for entry_id, fields in entries if fields]


def _read_new(client: redis.Redis, consumer: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    response = client.xreadgroup(GROUP, consumer, {stream_key(): ">"}, count=settings.USAGE_DRAIN_BATCH_SIZE)
    return response[0][1] if response else []


def _store(client: redis.Redis, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> int:
    records = []
    for entry_id, fields in entries:
        try:
            records.append(UsageRecord.from_json(fields[b"r"]))
        except (KeyError, TypeError, ValueError):
            logger.error("usage: unreadable stream entry %s dropped: %r", entry_id, fields)
    stored = usage_ingest(records=records)
    ids = [entry_id for entry_id, _ in entries]
    # Only after the commit: a crash before this line leaves the entries pending, to be claimed again.
    client.xack(stream_key(), GROUP, *ids)
    client.xdel(stream_key(), *ids)
    return stored
