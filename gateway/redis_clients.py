"""The gateway's Redis: where its windows, usage streams and token counts live, and how to reach it.

GATEWAY_REDIS_URL names it; unset, it is REDIS_URL's Redis. With GATEWAY_REDIS_CLUSTER=1 it is a
Redis Cluster, and GATEWAY_REDIS_URL may list several of its nodes, comma-separated, to start
from (the client learns the rest, and where each slot lives, from whichever answers). Every key
one script touches shares a hash tag (gateway/redis_keys.py), which is what a cluster requires.

REDIS_URL stays a plain Redis whatever this says: Celery's broker, Channels' layer, Django's cache
and the invalidation channel live there, and none of them can use a cluster.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from django.conf import settings

AsyncClient = redis.asyncio.Redis | redis.asyncio.RedisCluster
SyncClient = redis.Redis | redis.RedisCluster
Address = tuple[str, int]


def gateway_redis_url() -> str:
    """The gateway's Redis (a cluster's node list when GATEWAY_REDIS_CLUSTER is on); "" for none."""
    return settings.GATEWAY_REDIS_URL or settings.REDIS_URL


def is_cluster() -> bool:
    return settings.GATEWAY_REDIS_CLUSTER


def separate_from_redis_url() -> bool:
    """Whether the gateway's Redis is another server than REDIS_URL's (so a PUBLISH for Channels
    cannot ride in the gateway's pipelines, and readiness asks both)."""
    return gateway_redis_url() != settings.REDIS_URL


def async_gateway_redis(**options: Any) -> AsyncClient:
    """A client of the gateway's Redis for the event loop; `options` as redis-py takes them."""
    first, *others = node_urls()
    if is_cluster():
        seeds = [redis.asyncio.cluster.ClusterNode(*host_and_port(url)) for url in others]
        return redis.asyncio.RedisCluster.from_url(first, startup_nodes=seeds, **options)
    return redis.asyncio.Redis.from_url(first, **options)


def sync_gateway_redis(**options: Any) -> SyncClient:
    """A client of the gateway's Redis for threads (the drain, pages, the metrics scrape)."""
    first, *others = node_urls()
    if is_cluster():
        seeds = [redis.cluster.ClusterNode(*host_and_port(url)) for url in others]
        return redis.RedisCluster.from_url(first, startup_nodes=seeds, **options)
    return redis.Redis.from_url(first, **options)


def node_urls() -> list[str]:
    urls = [url.strip() for url in gateway_redis_url().split(",") if url.strip()]
    if not urls:
        raise RuntimeError("no Redis for the gateway: set REDIS_URL or GATEWAY_REDIS_URL")
    return urls


def host_and_port(url: str) -> Address:
    parsed = redis.connection.parse_url(url)
    return parsed.get("host", "localhost"), int(parsed.get("port", 6379))
