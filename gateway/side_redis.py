"""A small Redis client for the gateway's calls off the hot path: a key's token counts
(gateway/key_usage.py) and the readiness check (gateway/health.py).

Apart from the limiter's pipelined connections, so that these never wait behind decisions, and
with short timeouts, since each answers a caller who is waiting.
"""

from __future__ import annotations

import redis.asyncio
from django.conf import settings

TIMEOUT_SECONDS = 1.0

_client: redis.asyncio.Redis | None = None


def side_redis() -> redis.asyncio.Redis:
    global _client  # one per process, made on first use
    if _client is None:
        _client = redis.asyncio.Redis.from_url(
            settings.REDIS_URL, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
        )
    return _client


async def close_side_redis() -> None:
    global _client
    if _client is not None:
        await _client.aclose()
    _client = None
