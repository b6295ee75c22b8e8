"""Which master of a Redis Cluster holds each hash slot, as the cluster itself says (CLUSTER SLOTS).

The limiter routes its own decisions with this (gateway/limits.py ClusterScriptPipelines) instead
of redis-py's cluster client, whose pipeline fails as a whole when one master is out and whose
re-discovery asks the first master it knows, lost or not: the limiter must fail open only for
the accounts of the master that is out, and go on deciding for all the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import redis.asyncio
from redis.connection import parse_url
from redis.crc import key_slot

from gateway.redis_clients import Address, host_and_port

logger = logging.getLogger(__name__)

SLOTS = 16384
REFRESH_INTERVAL_SECONDS = 1.0  # how often a failing master may send us asking for the map again


class SlotOwners:
    """The slot map, learnt from any node that answers (the seeds, then every master seen)."""

    def __init__(self, seed_urls: list[str], timeout: float) -> None:
        first = parse_url(seed_urls[0])
        # What every node is reached with besides its address: credentials, TLS.
        self.connection_options: dict[str, Any] = {
            name: value for name, value in first.items() if name not in ("host", "port", "db")
        }
        self._known: list[Address] = [host_and_port(url) for url in seed_urls]
        self._timeout = timeout
        self._owners: list[Address | None] = []  # slot -> its master, None while none serves it
        self._fetching: asyncio.Task[None] | None = None
        self._fetched_at = float("-inf")

    async def owner_of(self, key: bytes) -> Address:
        if not self._owners:
            await self.refresh()
        if (owner := self._owners[key_slot(key)]) is None:
            raise redis.ConnectionError("no master of the Redis Cluster serves this key's slot")
        return owner

    async def refresh(self) -> None:
        """Learn the map again (one fetch at a time, whoever asks); raises if no node answers."""
        if self._fetching is None:
            self._fetching = asyncio.get_running_loop().create_task(self._fetch(), name="cluster-slot-map")
        fetching = self._fetching
        try:
            await asyncio.shield(fetching)
        finally:
            if fetching.done() and self._fetching is fetching:
                self._fetching = None

    def refresh_soon(self) -> None:
        """A master failed: its slots may have moved to a replica, so ask again, at most once a second."""
        if self._fetching is None and time.monotonic() - self._fetched_at >= REFRESH_INTERVAL_SECONDS:
            self._fetched_at = time.monotonic()
            asyncio.get_running_loop().create_task(self._refresh_quietly(), name="cluster-slot-map-soon")

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except (TimeoutError, redis.RedisError, OSError) as exc:
            logger.warning("no node of the Redis Cluster told its slot map: %r", exc)

    async def _fetch(self) -> None:
        self._fetched_at = time.monotonic()
        for address in list(self._known):
            try:
                slots = await self._slots_from(address)
            except (TimeoutError, redis.RedisError, OSError):
                continue
            self._owners = owners_from(slots)
            self._known = list(dict.fromkeys([*self._known, *filter(None, self._owners)]))
            return
        raise redis.ConnectionError("no node of the Redis Cluster answered CLUSTER SLOTS")

    async def _slots_from(self, address: Address) -> list[list[Any]]:
        host, port = address
        client = redis.asyncio.Redis(
            host=host,
            port=port,
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
            **self.connection_options,
        )
        try:
            return await client.execute_command("CLUSTER", "SLOTS")
        finally:
            await client.aclose()


def owners_from(slots: list[list[Any]]) -> list[Address | None]:
    """CLUSTER SLOTS ([first, last, [host, port, id], replicas...] per range) as slot -> master."""
    owners: list[Address | None] = [None] * SLOTS
    for first, last, master, *_ in slots:
        host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
        owners[int(first) : int(last) + 1] = [(host, int(master[1]))] * (int(last) - int(first) + 1)
    return owners
