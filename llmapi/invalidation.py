"""Tell every process that cached data changed: keys revoked, plans or routes edited.

A message is a short topic such as `key:<hash>`, `user:<id>`, `plans` or `routes`. It is
delivered at once to listeners in this process and, when REDIS_URL is set, published on one
Redis channel that every gateway process subscribes to (gateway/cache.py), so a deleted key stops
working everywhere within a second. Messages go out after the transaction commits, so that no
listener reloads the old rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache

import redis
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

_local_listeners: list[Callable[[str], None]] = []


def add_local_listener(listener: Callable[[str], None]) -> None:
    if listener not in _local_listeners:
        _local_listeners.append(listener)


def deliver_locally(topic: str) -> None:
    for listener in _local_listeners:
        try:
            listener(topic)
        except Exception:
            # One listener choking on a malformed topic must neither starve the others nor end the
            # Redis listener that called us.
            logger.exception("invalidation listener %r failed on topic %r", listener, topic[:100])


@cache
def _redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def channel() -> str:
    # Under the key prefix, so that deployments (or test runs) sharing a Redis keep their caches apart.
    return f"{settings.REDIS_KEY_PREFIX}:invalidate"


def _publish_now(topic: str) -> None:
    deliver_locally(topic)
    if not settings.REDIS_URL:
        return
    try:
        _redis_client().publish(channel(), topic)
    except redis.RedisError:
        # The gateway's caches expire on their own within their TTL; say so rather than fail the write.
        logger.warning("could not publish invalidation %r; other processes catch up within the cache TTL", topic)


def publish(topic: str) -> None:
    transaction.on_commit(lambda: _publish_now(topic))
