"""Who is calling: the API key from `x-api-key` or `Authorization: Bearer`, checked and cached.

Failed authentication must stay cheap whatever a client sends (issue 10): a malformed key is refused
without any lookup; a known key is served from a bounded cache; an unknown hash is remembered in a
bounded cache of its own (so a flood of fake keys can never push out the real ones); lookups run on
threads of their own, a few per client address at a time with a bounded queue behind them; and a client address with too
many failed authentications in the last minute gets 429 before any database query.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from django.conf import settings

from gateway.cache import TtlCache, in_key_lookup_thread
from gateway.errors import GatewayError
from keys import keyformat
from keys.selectors import KeyPrincipal
from keys.services import api_key_authenticate
from llmapi.invalidation import add_local_listener

# Claude Code recognises this wording for a bad key.
INVALID_KEY_MESSAGE = "invalid x-api-key"
MISSING_KEY_MESSAGE = "x-api-key header is required"
FAILURE_WINDOW_SECONDS = 60.0
# Client addresses whose failures are counted at once; past it the oldest counts are forgotten.
THROTTLED_CLIENTS_TRACKED = 100_000

_principals: TtlCache[str, KeyPrincipal] = TtlCache(settings.GATEWAY_CACHE_TTL_SECONDS, settings.GATEWAY_KEY_CACHE_SIZE)
_unknown_hashes: TtlCache[str, bool] = TtlCache(
    settings.GATEWAY_CACHE_TTL_SECONDS, settings.GATEWAY_UNKNOWN_KEY_CACHE_SIZE
)


class UnknownKeyError(Exception):
    """No active key has this hash (shared by every request that waited on the same lookup)."""


class FailedAuthThrottle:
    """Failed authentications per client address in a fixed window; over the limit, 429 until it ends."""

    def __init__(self, limit_per_window: int, window_seconds: float) -> None:
        self.limit = limit_per_window
        # Each count expires with its window: [failures, when the window ends].
        self._counts: TtlCache[str, list[float]] = TtlCache(window_seconds, THROTTLED_CLIENTS_TRACKED)
        self.window_seconds = window_seconds

    def __len__(self) -> int:
        return len(self._counts)

    def check(self, client: str) -> None:
        """Raise 429 if `client` already failed too often in its current window."""
        count = self._counts.get(client)
        if count is None or self.limit <= 0 or count[0] < self.limit:
            return
        wait_seconds = max(1, math.ceil(count[1] - time.monotonic()))
        raise GatewayError(
            429,
            f"Too many requests with an invalid API key from this address. Try again in {wait_seconds} s.",
            [(b"retry-after", str(wait_seconds).encode())],
        )

    def record_failure(self, client: str) -> None:
        count = self._counts.get(client)
        if count is None:
            self._counts.put(client, [1, time.monotonic() + self.window_seconds])
        else:
            count[0] += 1

    def clear(self) -> None:
        self._counts.clear()


failed_auth_throttle = FailedAuthThrottle(settings.GATEWAY_AUTH_FAILURES_PER_MINUTE, FAILURE_WINDOW_SECONDS)


class LookupsInFlight:
    """Key lookups per client address: a few run at once, a bounded number wait their turn (first
    come, first served), and past that the next one gets 429.

    Waiting rather than refusing at once lets a legitimate client start with many keys together (a
    team behind one address, a load test rotating keys); the bound keeps a flood from one address
    to a fixed number of lookups, and the failed-auth throttle is asked again once a turn comes.
    """

    def __init__(self, limit_per_client: int, waiting_per_client: int) -> None:
        self.limit = limit_per_client
        self.waiting_limit = waiting_per_client
        self._clients: dict[str, _ClientLookups] = {}

    def __len__(self) -> int:
        return len(self._clients)

    @asynccontextmanager
    async def slot(self, client: str) -> AsyncIterator[None]:
        lookups = self._clients.get(client)
        if lookups is None:
            lookups = self._clients[client] = _ClientLookups()
        if lookups.running < self.limit:
            lookups.running += 1
        else:
            await self._wait_for_turn(client, lookups)
        try:
            yield
        finally:
            self._release(client, lookups)

    async def _wait_for_turn(self, client: str, lookups: _ClientLookups) -> None:
        if len(lookups.waiting) >= self.waiting_limit:
            raise GatewayError(
                429,
                "Too many API key checks in flight from this address. Try again in a moment.",
                [(b"retry-after", b"1")],
            )
        turn = asyncio.get_running_loop().create_future()
        lookups.waiting.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release(client, lookups)  # the turn came just as the request went away
            else:
                lookups.waiting.remove(turn)
            raise

    def _release(self, client: str, lookups: _ClientLookups) -> None:
        """Hand the finished lookup's turn to the first waiter, or free it."""
        while lookups.waiting:
            turn = lookups.waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        lookups.running -= 1
        if not lookups.running:
            del self._clients[client]  # the table holds only clients with lookups running


@dataclass
class _ClientLookups:
    running: int = 0
    waiting: deque[asyncio.Future[None]] = field(default_factory=deque)


lookups_in_flight = LookupsInFlight(
    settings.GATEWAY_KEY_LOOKUPS_PER_CLIENT, settings.GATEWAY_KEY_LOOKUPS_WAITING_PER_CLIENT
)


def presented_key(headers: dict[bytes, bytes]) -> str | None:
    """The key the client sent. Some clients send both headers; a well-formed one wins."""
    candidates = []
    if api_key := headers.get(b"x-api-key"):
        candidates.append(api_key.decode("latin-1").strip())
    authorization = headers.get(b"authorization", b"")
    if authorization[:7].lower() == b"bearer ":
        candidates.append(authorization[7:].decode("latin-1").strip())
    for candidate in candidates:
        if keyformat.is_well_formed(candidate):
            return candidate
    return candidates[0] if candidates else None


async def authenticate(headers: dict[bytes, bytes], client: str = "") -> KeyPrincipal:
    """The principal of the presented key. `client` is the caller's address (the ASGI server's
    `scope["client"]`, which names the real client only behind a configured trusted proxy)."""
    key = presented_key(headers)
    if not key:
        raise GatewayError(401, MISSING_KEY_MESSAGE)
    if not keyformat.is_well_formed(key):
        raise GatewayError(401, INVALID_KEY_MESSAGE)  # costs nothing, so it is not counted
    hashed_key = keyformat.hash_key(key)
    principal = _principals.get(hashed_key)
    if principal is None:
        principal = await _look_up(key, hashed_key, client)
    if not principal.user_is_active:
        raise GatewayError(403, "This account is disabled. Contact support to restore access.")
    return principal


async def _look_up(key: str, hashed_key: str, client: str) -> KeyPrincipal:
    failed_auth_throttle.check(client)  # before the database, and before the unknown-hash cache
    if _unknown_hashes.get(hashed_key):
        failed_auth_throttle.record_failure(client)
        raise GatewayError(401, INVALID_KEY_MESSAGE)

    async def load() -> KeyPrincipal:
        async with lookups_in_flight.slot(client):
            failed_auth_throttle.check(client)  # again: this address may have failed while it waited
            principal = await in_key_lookup_thread(lambda: api_key_authenticate(key=key))
        if principal is None:
            raise UnknownKeyError
        return principal

    try:
        return await _principals.get_or_load(hashed_key, load)
    except UnknownKeyError:
        _unknown_hashes.put(hashed_key, True)
        failed_auth_throttle.record_failure(client)
        raise GatewayError(401, INVALID_KEY_MESSAGE) from None


def cache_sizes() -> dict[str, int]:
    """How many entries each of this module's tables holds (each is bounded)."""
    return {
        "principals": len(_principals),
        "unknown_hashes": len(_unknown_hashes),
        "throttled_clients": len(failed_auth_throttle),
        "lookups_in_flight": len(lookups_in_flight),
    }


def _invalidate(topic: str) -> None:
    kind, _, value = topic.partition(":")
    if kind == "key":
        _principals.pop(value)
    elif kind == "user" and value.isdigit():
        user_id = int(value)
        _principals.pop_where(lambda principal: principal.user_id == user_id)
    elif topic in {"plans", "*"}:
        _principals.clear()
        _unknown_hashes.clear()


add_local_listener(_invalidate)
