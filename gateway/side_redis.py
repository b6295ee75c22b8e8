"""Small Redis clients for the gateway's calls off the hot path: a key's token counts
(gateway/key_usage.py) and the readiness check (gateway/health.py).

Apart from the limiter's pipelined connections, so that these never wait behind decisions, and
with short timeouts, since each answers a caller who is waiting.
"""

from __future__ import annotations

import redis.asyncio
from django.conf import settings

from gateway.redis_clients import AsyncClient, async_gateway_redis

TIMEOUT_SECONDS = 1.0

_gateway_client: AsyncClient | None = None
_plain_client: redis.asyncio.Redis | None = None


def side_redis() -> AsyncClient:
    """The gateway's Redis (gateway/redis_clients.py)."""
    global _gateway_client  # one per process, made on first use
    if _gateway_client is None:
        _gateway_client = async_gateway_redis(socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS)
    return _gateway_client


def plain_side_redis() -> redis.asyncio.Redis:
    """REDIS_URL's Redis (Celery, Channels, the cache, the invalidation channel)."""
    global _plain_client  # one per process, made on first use
    if _plain_client is None:
        _plain_client = redis.asyncio.Redis.from_url(
            settings.REDIS_URL, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
        )
    return _plain_client


async def close_side_redis() -> None:
    global _gateway_client, _plain_client
    for client in (_gateway_client, _plain_client):
        if client is not None:
            await client.aclose()
    _gateway_client = _plain_client = None
