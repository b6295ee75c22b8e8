"""In-process caches of the gateway, and the listener that keeps them fresh.

A warm request makes no database query: keys and routes are cached here with a TTL. Changes
arrive as invalidation topics (llmapi/invalidation.py): delivered locally, and from other
processes over one Redis pub/sub channel that a background task of each gateway process follows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
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

_MISSING = object()


class TtlCache(Generic[KeyT, ValueT]):
    """A dict whose entries expire; concurrent misses of one key share one load."""

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl_seconds = ttl_seconds
        self._entries: dict[KeyT, tuple[float, ValueT]] = {}
        self._loading: dict[KeyT, asyncio.Future[ValueT]] = {}

    async def get_or_load(self, key: KeyT, load: Callable[[], Awaitable[ValueT]]) -> ValueT:
        entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ValueT] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # a miss that nobody else awaited must not warn "never retrieved"
            raise
        finally:
            del self._loading[key]
        self._entries[key] = (time.monotonic() + self.ttl_seconds, value)
        future.set_result(value)
        return value

    def pop(self, key: KeyT) -> None:
        self._entries.pop(key, None)

    def pop_where(self, predicate: Callable[[ValueT], bool]) -> None:
        # list() takes a snapshot: a Django thread of this process may invalidate concurrently.
        for key, (_, value) in list(self._entries.items()):
            if predicate(value):
                self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()


def _with_fresh_connection(function: Callable[..., ResultT]) -> Callable[..., ResultT]:
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
    return sync_to_async(_with_fresh_connection(function), thread_sensitive=True)


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
                    subscribed.set()
                    delay = 0.5
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            deliver_locally(message["data"].decode())
            except (redis.RedisError, OSError) as exc:
                logger.warning("invalidation channel lost (%s); retrying in %.1f s", exc, delay)
            finally:
                await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


invalidation_listener = InvalidationListener()
