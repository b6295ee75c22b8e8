"""In-process caches of the gateway, and the listener that keeps them fresh.

A warm request makes no database query: keys and routes are cached here with a TTL. Changes
arrive as invalidation topics (llmapi/invalidation.py): delivered locally, and from other
processes over one Redis pub/sub channel that a background task of each gateway process follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

import redis.asyncio
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from llmapi.invalidation import channel, deliver_locally

logger = logging.getLogger(__name__)

KeyT = TypeVar("KeyT", bound=Hashable)
ValueT = TypeVar("ValueT")
ResultT = TypeVar("ResultT")


class TtlCache(Generic[KeyT, ValueT]):
    """A dict whose entries expire and whose size is bounded; concurrent misses of one key share one load.

    Every entry lives the same time from its insertion, so insertion order is expiry order: the
    oldest entry is the first to drop, whether it expired or the cache is full. Expired entries are
    dropped as new ones arrive, so a flood of distinct keys cannot grow the cache past its bound.

    A load that an invalidation overtook (it read the database before the change it announces) is
    handed to those waiting for it but not kept: kept, it would outlive the change by a whole TTL.
    """

    def __init__(self, ttl_seconds: float, max_entries: int = 10_000) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max(1, max_entries)
        # OrderedDict, not dict: dropping its oldest entry stays O(1) however many went before.
        self._entries: OrderedDict[KeyT, tuple[float, ValueT]] = OrderedDict()
        self._loading: dict[KeyT, asyncio.Future[ValueT]] = {}
        self._invalidations = 0  # counted from any thread; a load keeps its value only if none came

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: KeyT) -> ValueT | None:
        """The cached value, or None when there is none or it expired."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        return None

    def put(self, key: KeyT, value: ValueT) -> None:
        now = time.monotonic()
        self._entries.pop(key, None)  # re-inserted at the end, so that order stays expiry order
        self._entries[key] = (now + self.ttl_seconds, value)
        self._drop_oldest(now)

    def _drop_oldest(self, now: float) -> None:
        entries = self._entries
        while entries:
            try:
                oldest_key, (expires_at, _) = next(iter(entries.items()))
            except (StopIteration, RuntimeError):  # emptied or changed by an invalidating thread
                return
            if expires_at > now and len(entries) <= self.max_entries:
                return
            entries.pop(oldest_key, None)

    async def get_or_load(self, key: KeyT, load: Callable[[], Awaitable[ValueT]]) -> ValueT:
        value = self.get(key)
        if value is not None:
            return value
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ValueT] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        invalidations = self._invalidations
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # a miss that nobody else awaited must not warn "never retrieved"
            raise
        finally:
            del self._loading[key]
        if invalidations == self._invalidations:
            self.put(key, value)
        future.set_result(value)
        return value

    def pop(self, key: KeyT) -> None:
        self._invalidations += 1
        self._entries.pop(key, None)

    def pop_where(self, predicate: Callable[[ValueT], bool]) -> None:
        self._invalidations += 1
        # list() takes a snapshot: a Django thread of this process may invalidate concurrently.
        for key, (_, value) in list(self._entries.items()):
            if predicate(value):
                self._entries.pop(key, None)

    def clear(self) -> None:
        self._invalidations += 1
        self._entries.clear()


def with_fresh_connection(function: Callable[..., ResultT]) -> Callable[..., ResultT]:
    # The gateway runs no Django request cycle, so it closes stale connections itself.
    def run(*args: object, **kwargs: object) -> ResultT:
        close_old_connections()
        try:
            return function(*args, **kwargs)
        finally:
            close_old_connections()

    return run


def in_database_thread(function: Callable[..., ResultT]) -> Callable[..., Awaitable[ResultT]]:
    """`function` (synchronous ORM code) made awaitable from the gateway's event loop: the one way
    the gateway reaches the database, reads and writes alike."""
    return sync_to_async(with_fresh_connection(function), thread_sensitive=True)


_key_lookup_threads: ThreadPoolExecutor | None = None


def in_key_lookup_thread(function: Callable[[], ResultT]) -> Awaitable[ResultT]:
    """Run `function` (a key lookup) on the few threads kept for key lookups.

    Not the shared database thread: a flood of unknown keys must not queue other database work,
    nor queue key lookups behind it. The threads are started on first use.
    """
    global _key_lookup_threads  # one pool per process, made on first use
    if _key_lookup_threads is None:
        _key_lookup_threads = ThreadPoolExecutor(
            max_workers=settings.GATEWAY_KEY_LOOKUP_THREADS, thread_name_prefix="gateway-key-lookup"
        )
    return asyncio.get_running_loop().run_in_executor(_key_lookup_threads, with_fresh_connection(function))


class InvalidationListener:
    """Follows the Redis invalidation channel; after a lost connection, drops every cache."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None and settings.REDIS_URL:
            subscribed = asyncio.Event()
            self._task = asyncio.create_task(self._follow(subscribed), name="gateway-invalidation-listener")
            # Wait briefly for the subscription so that a change made right after startup is seen.
            try:
                await asyncio.wait_for(subscribed.wait(), timeout=2.0)
            except TimeoutError:
                logger.warning("invalidation channel not subscribed yet; caches rely on their TTL")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _follow(self, subscribed: asyncio.Event) -> None:
        delay = 0.5
        while True:
            client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(channel())
                    deliver_locally("*")  # whatever changed while we were not listening
                    # redis-py may reconnect and resubscribe on its own inside listen(): the same then.
                    pubsub.connection.register_connect_callback(self._reconnected)
                    subscribed.set()
                    delay = 0.5
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            deliver_message(message["data"])
            except (redis.RedisError, OSError) as exc:
                logger.warning("invalidation channel lost (%s); retrying in %.1f s", exc, delay)
            except Exception:
                # Whatever else went wrong, the listener must outlive it: without it, caches go stale.
                logger.exception("invalidation listener failed; resubscribing in %.1f s", delay)
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _reconnected(self, connection: object) -> None:
        deliver_locally("*")


def deliver_message(data: bytes) -> None:
    """One message of the channel, delivered in this process; a malformed one is logged and dropped."""
    try:
        topic = data.decode()
    except UnicodeDecodeError:
        logger.warning("ignoring an invalidation message that is not UTF-8: %r", data[:100])
        return
    deliver_locally(topic)


invalidation_listener = InvalidationListener()
