"""The gateway on a Redis Cluster: three masters on loopback hold the windows, the usage streams
and the token counts (GATEWAY_REDIS_URL), spread over sixteen hash tags (REDIS_SHARDS), while
REDIS_URL stays the plain Redis of Celery, Channels and the invalidation channel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
import redis

from accounts.models import User
from gateway.redis_keys import all_shards, shard_for_user, usage_stream_key
from gateway.usage.models import UsageEvent, UsageStart
from keys.services import api_key_create
from plans.models import Plan
from tests.gateway.test_limits_under_load import post_all, put_on_plan
from tests.gateway.test_usage_pipeline import assert_exact, send_many
from tests.helpers import wait_until
from tests.servers import RedisClusterServer, celery_worker, gateway_process

SHARDS = 16


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory) -> Iterator[RedisClusterServer]:
    cluster = RedisClusterServer(tmp_path_factory.mktemp("cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def on_the_cluster(redis_cluster, settings) -> dict[str, str]:
    """The environment of processes on the cluster, this process's settings the same; each test
    starts with an empty cluster."""
    env = {"GATEWAY_REDIS_URL": redis_cluster.url, "GATEWAY_REDIS_CLUSTER": "1", "REDIS_SHARDS": str(SHARDS)}
    settings.GATEWAY_REDIS_URL, settings.GATEWAY_REDIS_CLUSTER, settings.REDIS_SHARDS = redis_cluster.url, True, SHARDS
    for node in redis_cluster.nodes:
        with redis.Redis.from_url(node.url) as client:
            client.flushall()
    return env


@pytest.fixture
def cluster_client(on_the_cluster, redis_cluster) -> Iterator[redis.RedisCluster]:
    with redis.RedisCluster.from_url(redis_cluster.nodes[0].url) as client:
        yield client


def accounts_with_keys(count: int, plan: Plan) -> list[str]:
    return [
        api_key_create(user=User.objects.create_user(f"user{number}@example.com", "pw", plan=plan), name="k").secret
        for number in range(count)
    ]


def keys_per_node(redis_cluster: RedisClusterServer) -> list[int]:
    counts = []
    for node in redis_cluster.nodes:
        with redis.Redis.from_url(node.url) as client:
            counts.append(client.dbsize())
    return counts


def test_limits_are_exact_with_the_windows_spread_over_three_masters(gateway, on_the_cluster, redis_cluster):
    put_on_plan(gateway, "free", concurrent_requests_per_key=1000)
    free = Plan.objects.get(slug="free")
    keys = accounts_with_keys(SHARDS, free)  # an account per hash tag, its windows on that tag's master
    with gateway_process(workers=2, GATEWAY_KEY_LOOKUPS_PER_CLIENT="64", **on_the_cluster) as base_url:
        one_key = asyncio.run(post_all(base_url, [gateway.key], 200))
        many_accounts = asyncio.run(post_all(base_url, keys, 13))
    assert one_key.count(200) == 10
    assert one_key.count(429) == 190
    assert many_accounts.count(200) == SHARDS * 10
    assert many_accounts.count(429) == SHARDS * 3
    assert len(gateway.simulator.requests()) == 10 + SHARDS * 10
    assert all(keys_per_node(redis_cluster))  # every master holds windows


def test_usage_is_drained_from_every_stream_of_the_cluster(gateway, on_the_cluster, cluster_client, tmp_path):
    unlimited = Plan.objects.create(
        slug="unlimited",
        name="Unlimited",
        max_keys=5,
        requests_per_minute=1_000_000,
        requests_per_5_hours=1_000_000,
        requests_per_week=1_000_000,
        concurrent_requests_per_key=1_000,
    )
    keys = accounts_with_keys(SHARDS, unlimited)
    with gateway_process(workers=2, **on_the_cluster) as base_url:

        async def from_every_account() -> list[dict]:
            batches = await asyncio.gather(*(send_many(base_url, key, 20) for key in keys))
            return [usage for batch in batches for usage in batch]

        usages = asyncio.run(from_every_account())
        # The key's own usage endpoint reads today's token counts from the cluster.
        report = httpx.get(base_url + "/llmapi/usage", headers={"x-api-key": keys[0]}).json()
        wait_until(lambda: httpx.get(base_url + "/llmapi/usage", headers={"x-api-key": keys[0]}).json()["tokens_today"])
    assert report["windows"]["minute"]["used"] >= 20
    with celery_worker(tmp_path, USAGE_DRAIN_INTERVAL_SECONDS="0.5", **on_the_cluster):
        wait_until(lambda: UsageEvent.objects.count() == len(usages), timeout=60)
        wait_until(lambda: sum(cluster_client.xlen(usage_stream_key(shard)) for shard in all_shards()) == 0)
    assert_exact(usages)
    assert not UsageStart.objects.exists()  # every admission written ahead met its record
    assert UsageEvent.objects.values("user").distinct().count() == SHARDS


def test_a_user_deleted_in_the_admin_is_refused_by_every_process(gateway, on_the_cluster, admin_client):
    with gateway_process(**on_the_cluster) as first, gateway_process(**on_the_cluster) as second:
        for base_url in (first, second):
            assert status_of(base_url, gateway.key) == 200  # cached there now
        response = admin_client.post(f"/admin/accounts/user/{gateway.user.pk}/delete/", {"post": "yes"})
        assert response.status_code == 302
        for base_url in (first, second):
            wait_until(lambda base_url=base_url: status_of(base_url, gateway.key) == 401, timeout=1.0)


def test_a_master_lost_fails_open_its_own_accounts_only_until_it_is_back(gateway, on_the_cluster, redis_cluster):
    free = Plan.objects.get(slug="free")
    keys = accounts_with_keys(SHARDS, free)
    masters = [master_of(redis_cluster, User.objects.get(email=f"user{n}@example.com")) for n in range(SHARDS)]
    lost = masters[0]
    on_lost, elsewhere = keys[0], keys[masters.index(next(port for port in masters if port != lost))]
    lost_node = next(node for node in redis_cluster.nodes if node.port == lost)
    with gateway_process(**on_the_cluster) as base_url:
        assert readiness(base_url) == (200, {"status": "ok", "database": "ok", "redis": "ok", "gateway_redis": "ok"})
        lost_node.stop()
        try:
            wait_until(lambda: readiness(base_url)[0] == 503)
            assert readiness(base_url)[1]["gateway_redis"] != "ok"
            assert decided_in_redis(base_url, elsewhere)  # the other masters go on deciding
            assert not decided_in_redis(base_url, on_lost)  # served, unchecked, and counted once back
        finally:
            lost_node.start()  # its node file brings it back with its slots, empty
        wait_until(lambda: readiness(base_url)[0] == 200)
        wait_until(lambda: decided_in_redis(base_url, on_lost))  # the decision script loaded there again


def master_of(redis_cluster: RedisClusterServer, user: User) -> int:
    """The port of the master that holds an account's windows."""
    with redis.RedisCluster.from_url(redis_cluster.nodes[0].url) as client:
        return client.get_node_from_key(usage_stream_key(shard_for_user(user.pk))).port


def readiness(base_url: str) -> tuple[int, dict]:
    response = httpx.get(base_url + "/readyz")
    return response.status_code, response.json()


def decided_in_redis(base_url: str, key: str) -> bool:
    """Admitted with the windows Redis counted (a request admitted unchecked carries none)."""
    body = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "Hello"}]}
    response = httpx.post(base_url + "/v1/messages", json=body, headers={"x-api-key": key}, timeout=30)
    assert response.status_code == 200
    return "llmapi-ratelimit-requests-5h-limit" in response.headers


def status_of(base_url: str, key: str) -> int:
    body = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "Hello"}]}
    return httpx.post(base_url + "/v1/messages", json=body, headers={"x-api-key": key}, timeout=30).status_code
