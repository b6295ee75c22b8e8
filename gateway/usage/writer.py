"""The gateway side of usage: `emit` a finished request's record, and a writer task sends it on.

`emit` only appends to an in-process buffer; a background task of the gateway process (the
writer) moves the buffer on, so the client never waits for it:
- with Redis, one script call per batch and stream appends it to the usage streams, which Celery
  drains into PostgreSQL (gateway/usage/drain.py); the admission was written there ahead of it;
- without Redis (the embedded default), straight into the database in batches.
The same round trip adds finished requests' tokens to their token windows (gateway/limits.py);
without Redis the in-process limiter takes them at once.
Refusals (answers of our own: 401, 404, 429...) are not records: each process counts them per
hour, key, model and status, and sends the counts as one entry, with the next batch of records
or after a second at most.
The stream has a ceiling (USAGE_STREAM_MAX_LENGTH): a batch that would pass it goes to the
database instead, so that a backlog never fills the Redis the limiter lives in.
When Redis is unreachable the records stay in the buffer and go out when it is back; if the
buffer grows past USAGE_BUFFER_LIMIT, or the process shuts down while Redis is away, they are
written to the database directly. A record is never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Sequence

import orjson
import redis.asyncio
from django.conf import settings

from accounts.live import announce_in_pipeline, announce_through_layer
from gateway.cache import in_database_thread
from gateway.limits import TokenCharge, add_token_charges, limiter
from gateway.redis_clients import async_gateway_redis, gateway_redis_url, separate_from_redis_url
from gateway.redis_keys import key_concurrency_key, key_tokens_key, shard_for_user, usage_stream_key, utc_day
from gateway.usage.clean import RECORD_FIELD, REFUSALS_FIELD, clean_records, payload_of
from gateway.usage.record import USAGE_FIELDS, RefusalCount, UsageRecord
from gateway.usage.services import usage_ingest

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
RECORD_FLUSH_SECONDS = 0.005  # how long a record waits for others to share its round trip
REFUSAL_FLUSH_SECONDS = 1.0  # refusal counts go out at least this often (sooner with a batch of records)


class StreamFullError(Exception):
    """The usage stream is at its ceiling: the batch must go elsewhere."""


# KEYS: the stream. ARGV: the ceiling, then pairs of (field, value), one entry each. Appends all
# of them, or none when they would take the stream past its ceiling (returns 0). No MAXLEN:
# entries nobody has consumed yet must never be trimmed away.
APPEND_SCRIPT = """
local ceiling = tonumber(ARGV[1])
local count = (#ARGV - 1) / 2
if redis.call('XLEN', KEYS[1]) + count > ceiling then return 0 end
for i = 2, #ARGV, 2 do
  redis.call('XADD', KEYS[1], '*', ARGV[i], ARGV[i + 1])
end
return 1
"""


class RedisStreamTarget:
    """Appends a batch to the usage streams in one round trip, unless a stream is full.

    A record goes to its account's stream (gateway/redis_keys.py), the one its admission was
    written ahead to, so that the drain reads the admission first; refusal counts go to the first.
    """

    def __init__(self) -> None:
        self._client = async_gateway_redis(socket_timeout=2, socket_connect_timeout=2)
        # Channels' layer lives on REDIS_URL: when that is another Redis, announcements go there apart.
        self._announce_apart = separate_from_redis_url()

    async def write(
        self, records: list[UsageRecord], refusals: list[RefusalCount], charges: Sequence[TokenCharge] = ()
    ) -> None:
        streams = entries_by_stream(records, refusals)
        async with self._client.pipeline(transaction=False) as pipe:
            for stream, entries in streams.items():
                # EVAL, not a registered script: in a pipeline redis-py asks SCRIPT EXISTS first (a round trip).
                pipe.eval(APPEND_SCRIPT, 1, stream, settings.USAGE_STREAM_MAX_LENGTH, *entries)
            free_slots(pipe, records)
            count_tokens_today(pipe, records)  # for the key's own usage endpoint, same trip
            add_token_charges(pipe, charges, int(time.time() * 1000))  # the token windows, same trip
            if not self._announce_apart:
                announce_in_pipeline(pipe, user_ids=(record.user_id for record in records))  # live bars, same trip
            results = await pipe.execute(raise_on_error=False)
        if self._announce_apart:
            await announce_through_layer(user_ids=(record.user_id for record in records))
        appended, extras = results[: len(streams)], results[len(streams) :]
        for result in appended:
            if isinstance(result, Exception):
                raise result  # the batch is tried again; what did go in is stored once all the same
        if not all(appended):
            raise StreamFullError  # the database takes the batch; what did go in is stored once all the same
        if failed := [result for result in extras if isinstance(result, Exception)]:
            # The records are in: a slot, a token count or a live bar is not worth sending them twice.
            logger.warning("usage: %d commands beside the records failed, first: %r", len(failed), failed[0])

    async def close(self) -> None:
        await self._client.aclose()


def free_slots(pipe: redis.asyncio.client.Pipeline, records: list[UsageRecord]) -> None:
    """The requests are over: their in-flight slots (gateway/limits.py) are freed, one command per key."""
    slots: dict[str, list[str]] = {}
    for record in records:
        slots.setdefault(key_concurrency_key(user_id=record.user_id, key_id=record.key_id), []).append(
            record.request_id
        )
    for key, request_ids in slots.items():
        pipe.zrem(key, *request_ids)


TOKEN_COUNTS_KEPT_SECONDS = 2 * 24 * 3600  # today's, and yesterday's for a while

# KEYS: token-count hashes of one shard (one Cluster slot); ARGV: how long to keep them (s), then
# per hash its counts in the order of USAGE_FIELDS. One call per shard rather than a command per
# hash and field (up to five per key in each batch, each packed and parsed by redis-py).
COUNT_TOKENS_SCRIPT = (
    "local fields = {"
    + ", ".join(f"'{name}'" for name in USAGE_FIELDS)
    + "}"
    + """
local keep = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  for f, field in ipairs(fields) do
    local count = tonumber(ARGV[1 + (i - 1) * #fields + f])
    if count ~= 0 then redis.call('HINCRBY', key, field, count) end
  end
  redis.call('EXPIRE', key, keep)
end
return 1
"""
)


def count_tokens_today(pipe: redis.asyncio.client.Pipeline, records: list[UsageRecord]) -> None:
    """Add the batch's tokens to each key's counts for the day its requests ended, summed first."""
    sums: dict[str, list[int]] = {}
    shards: dict[int, list[str]] = {}
    for record in records:
        key = key_tokens_key(user_id=record.user_id, key_id=record.key_id, day=utc_day(record.ended_at))
        if (counts := sums.get(key)) is None:
            counts = sums[key] = [0] * len(USAGE_FIELDS)
            shards.setdefault(shard_for_user(record.user_id), []).append(key)
        for index, name in enumerate(USAGE_FIELDS):
            counts[index] += getattr(record, name)
    for keys in shards.values():
        counts = [count for key in keys for count in sums[key]]
        # EVAL, not EVALSHA: a Redis that restarted has forgotten scripts, and a pipeline cannot load one midway.
        pipe.eval(COUNT_TOKENS_SCRIPT, len(keys), *keys, TOKEN_COUNTS_KEPT_SECONDS, *counts)


def entries_by_stream(records: list[UsageRecord], refusals: list[RefusalCount]) -> dict[str, list[bytes]]:
    """The stream entries of a batch, as (field, value) pairs, per stream."""
    streams: dict[str, list[bytes]] = {}
    for record in records:
        streams.setdefault(usage_stream_key(shard_for_user(record.user_id)), []).extend(
            (RECORD_FIELD, entry_payload(record))
        )
    if refusals:
        streams.setdefault(usage_stream_key(0), []).extend(
            (REFUSALS_FIELD, orjson.dumps([refusal.as_row() for refusal in refusals]))
        )
    return streams


def entry_payload(record: UsageRecord) -> bytes:
    """The record as JSON; one JSON cannot carry (a lone surrogate) is cleaned first, never left to fail a batch."""
    try:
        return record.to_json()
    except TypeError:
        storable, _ = clean_records([record])
        return storable[0].to_json() if storable else payload_of(record)  # the drain dead-letters the latter


class DatabaseTarget:
    """Writes records straight to the database (embedded mode, a full stream, and the last resort)."""

    async def write(
        self, records: list[UsageRecord], refusals: list[RefusalCount], charges: Sequence[TokenCharge] = ()
    ) -> None:
        await in_database_thread(usage_ingest)(records=records, refusals=refusals)
        await announce_through_layer(user_ids=(record.user_id for record in records))  # live bars

    async def close(self) -> None:
        return None


Target = RedisStreamTarget | DatabaseTarget
RefusalIdentity = tuple[int, int | None, int | None, str, int]


class UsageWriter:
    """The process's usage buffer, its refusal counts, and the background task that empties them."""

    def __init__(self) -> None:
        self.recent: deque[UsageRecord] = deque(maxlen=1_000)  # for debugging and tests
        self._buffer: deque[UsageRecord] = deque()
        self._charges: list[TokenCharge] = []  # for the token windows, with the next round trip
        self._refusals: Counter[RefusalIdentity] = Counter()
        self._refusal_flush_due = False
        self._record_flush_due = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._target: Target | None = None
        self._fallback = DatabaseTarget()

    def add(self, record: UsageRecord) -> None:
        if record.is_refusal:
            self.count_refusal(
                key_id=record.key_id, user_id=record.user_id, model=record.requested_model, status=record.status
            )
        else:
            self._buffer.append(record)
            self._flush_records_soon()
        self.recent.append(record)

    def add_charge(self, charge: TokenCharge) -> None:
        self._charges.append(charge)
        self._flush_records_soon()

    def _flush_records_soon(self) -> None:
        # A few milliseconds' grace gathers the records of requests ending together into one round
        # trip, and keeps the write off the path of a client's next request (sent the moment the
        # answer arrives), letting it run while that request waits on its backend instead.
        if len(self._buffer) >= BATCH_SIZE or len(self._charges) >= BATCH_SIZE:
            self._wake_up()
        elif not self._record_flush_due:
            self._record_flush_due = True
            asyncio.get_running_loop().call_later(RECORD_FLUSH_SECONDS, self._flush_records)

    def _flush_records(self) -> None:
        self._record_flush_due = False
        self._wake_up()

    def count_refusal(self, *, key_id: int | None, user_id: int | None, model: str, status: int) -> None:
        hour = int(time.time() // 3600) * 3600
        self._refusals[(hour, key_id, user_id, model[:200], status)] += 1
        if not self._refusal_flush_due:  # one entry per second at most, however many refusals
            self._refusal_flush_due = True
            asyncio.get_running_loop().call_later(REFUSAL_FLUSH_SECONDS, self._flush_refusals)

    def _flush_refusals(self) -> None:
        self._refusal_flush_due = False
        self._wake_up()

    def _wake_up(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="usage-writer")
        self._wake.set()

    def find(self, request_id: str) -> UsageRecord | None:
        return next((record for record in reversed(self.recent) if record.request_id == request_id), None)

    @property
    def pending(self) -> int:
        return len(self._buffer) + len(self._refusals) + len(self._charges)

    def _the_target(self) -> Target:
        if self._target is None:
            self._target = RedisStreamTarget() if gateway_redis_url() else DatabaseTarget()
        return self._target

    async def _run(self) -> None:
        target = self._the_target()
        delay = 0.5
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._buffer or self._refusals or self._charges:
                if await self._write_batch(target):
                    delay = 0.5
                    continue
                if len(self._buffer) > settings.USAGE_BUFFER_LIMIT:
                    await self._write_batch(self._fallback)  # too much to hold: the database takes it
                    continue
                await asyncio.sleep(delay)  # the target is away: keep the records, try again later
                delay = min(delay * 2, 10.0)

    async def _write_batch(self, target: Target) -> bool:
        batch = [self._buffer.popleft() for _ in range(min(BATCH_SIZE, len(self._buffer)))]
        refusals = [RefusalCount(*identity, count) for identity, count in self._refusals.items()]
        self._refusals.clear()
        # Tried once: a minute later they would no longer matter, and a retry could count them twice.
        charges, self._charges = self._charges, []
        try:
            try:
                await target.write(batch, refusals, charges)
            except StreamFullError:  # a backlog: the database takes this batch, Redis keeps its memory
                await self._fallback.write(batch, refusals)
        except Exception as exc:
            self._buffer.extendleft(reversed(batch))
            self._refusals.update({refusal.identity(): refusal.count for refusal in refusals})
            logger.warning("usage: %d records waiting, %s failed: %r", len(self._buffer), type(target).__name__, exc)
            return False
        return True

    async def close(self) -> None:
        """Flush what the process holds: to its target, else to the database."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        target = self._the_target()  # the stream, even when nothing was written before shutdown
        while self._buffer or self._refusals:
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


def emit_token_charge(charge: TokenCharge) -> None:
    """Hand a finished request's tokens over for its token windows; never blocks, never raises."""
    try:
        if gateway_redis_url():
            usage_writer.add_charge(charge)
        else:
            limiter().charge_now(charge)
    except Exception:
        logger.exception("the tokens of a request could not be charged")


def emit_refusal(*, status: int, key_id: int | None = None, user_id: int | None = None, model: str = "") -> None:
    """Count an answer of our own given before any record exists (a refused key); never raises."""
    try:
        usage_writer.count_refusal(key_id=key_id, user_id=user_id, model=model, status=status)
    except Exception:
        logger.exception("a %s refusal could not be counted", status)
