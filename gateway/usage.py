"""Usage records: one per /v1/messages request, handed over after the response ends.

`emit` only appends to an in-process buffer; a background task of the gateway process (the
writer) moves the buffer on, so the client never waits for it:
- with Redis, one pipelined XADD per batch onto the usage stream, which Celery drains into
  PostgreSQL (gateway/usage_pipeline.py);
- without Redis (the embedded default), straight into the database in batches.
When Redis is unreachable the records stay in the buffer and go out when it is back; if the
buffer grows past USAGE_BUFFER_LIMIT, or the process shuts down while Redis is away, they are
written to the database directly. A record is never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass

import orjson
import redis
import redis.asyncio
from django.conf import settings

from accounts.live import announce_in_pipeline, announce_in_process

logger = logging.getLogger(__name__)

USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
BATCH_SIZE = 500


@dataclass(slots=True)
class UsageRecord:
    request_id: str
    key_id: int
    user_id: int
    requested_model: str
    stream: bool
    upstream: str = ""
    upstream_model: str = ""
    status: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    time_to_first_token_ms: float | None = None
    duration_ms: float = 0.0
    client_disconnected: bool = False
    error_type: str = ""
    ended_at: float = 0.0  # seconds since the epoch

    def take_usage(self, usage: object) -> None:
        """Copy the token counts an upstream reported (`usage` of a message or an event)."""
        if not isinstance(usage, dict):
            return
        for name in USAGE_FIELDS:
            value = usage.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(self, name, value)

    def to_json(self) -> bytes:
        return orjson.dumps(self)  # orjson reads dataclasses natively, ten times faster than asdict()

    @classmethod
    def from_json(cls, raw: bytes) -> UsageRecord:
        return cls(**orjson.loads(raw))


def stream_key() -> str:
    return f"{settings.REDIS_KEY_PREFIX}:usage"


class RedisStreamTarget:
    """Appends records to the usage stream: one pipelined round trip per batch."""

    def __init__(self, url: str) -> None:
        self._client = redis.asyncio.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    async def write(self, records: list[UsageRecord]) -> None:
        # No MAXLEN: entries nobody has consumed yet must never be trimmed away.
        async with self._client.pipeline(transaction=False) as pipe:
            for record in records:
                pipe.xadd(stream_key(), {"r": record.to_json()})
            announce_in_pipeline(pipe, user_ids=(record.user_id for record in records))  # live bars, same trip
            await pipe.execute()

    async def close(self) -> None:
        await self._client.aclose()


class DatabaseTarget:
    """Writes records straight to the database (embedded mode, and the last resort)."""

    async def write(self, records: list[UsageRecord]) -> None:
        # Imported here: gateway.services imports this module (for UsageRecord).
        from gateway.cache import in_database_thread
        from gateway.services import usage_ingest

        await in_database_thread(usage_ingest)(records=records)
        await announce_in_process(user_ids=(record.user_id for record in records))  # live bars (embedded mode)

    async def close(self) -> None:
        return None


class UsageWriter:
    """The process's usage buffer and the background task that empties it."""

    def __init__(self) -> None:
        self.recent: deque[UsageRecord] = deque(maxlen=1_000)  # for debugging and tests
        self._buffer: deque[UsageRecord] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._target: RedisStreamTarget | DatabaseTarget | None = None
        self._fallback = DatabaseTarget()

    def add(self, record: UsageRecord) -> None:
        self._buffer.append(record)
        self.recent.append(record)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="usage-writer")
        self._wake.set()

    def find(self, request_id: str) -> UsageRecord | None:
        return next((record for record in reversed(self.recent) if record.request_id == request_id), None)

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def _run(self) -> None:
        if self._target is None:
            self._target = RedisStreamTarget(settings.REDIS_URL) if settings.REDIS_URL else DatabaseTarget()
        delay = 0.5
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._buffer:
                if await self._write_batch(self._target):
                    delay = 0.5
                    continue
                if len(self._buffer) > settings.USAGE_BUFFER_LIMIT:
                    await self._write_batch(self._fallback)  # too much to hold: the database takes it
                    continue
                await asyncio.sleep(delay)  # the target is away: keep the records, try again later
                delay = min(delay * 2, 10.0)

    async def _write_batch(self, target: RedisStreamTarget | DatabaseTarget) -> bool:
        batch = [self._buffer.popleft() for _ in range(min(BATCH_SIZE, len(self._buffer)))]
        try:
            await target.write(batch)
        except Exception as exc:
            self._buffer.extendleft(reversed(batch))
            logger.warning("usage: %d records waiting, %s failed: %r", len(self._buffer), type(target).__name__, exc)
            return False
        return True

    async def close(self) -> None:
        """Flush what the process holds: to its target, else to the database."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        target = self._target or self._fallback
        while self._buffer:
            if not await self._write_batch(target) and not await self._write_batch(self._fallback):
                logger.error("usage: %d records could not be written at shutdown", len(self._buffer))
                break
        if self._target is not None:
            await self._target.close()
            self._target = None


usage_writer = UsageWriter()


def emit(record: UsageRecord) -> None:
    """Hand a finished request's record over; never blocks, never raises."""
    record.ended_at = time.time()
    try:
        usage_writer.add(record)
    except Exception:
        logger.exception("usage record %s could not be buffered", record.request_id)
