"""Invalidation on every path (issue 10): deletes publish, the listener outlives bad messages and
Redis restarts, and a user deleted in the admin is refused by every gateway process at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
import redis

from accounts.models import User
from gateway.cache import InvalidationListener, TtlCache
from gateway.models import Upstream
from keys.models import ApiKey
from keys.services import api_key_create
from llmapi.invalidation import add_local_listener, channel
from plans.models import Plan
from tests.helpers import wait_until
from tests.servers import RedisServer, gateway_process

HELLO = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "Hello"}]}


class Topics:
    """Records every topic delivered in this process."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        add_local_listener(self.record)

    def record(self, topic: str) -> None:
        self.seen.append(topic)


@pytest.fixture
def topics() -> Iterator[Topics]:
    from llmapi import invalidation

    recorder = Topics()
    yield recorder
    invalidation._local_listeners.remove(recorder.record)


@pytest.mark.django_db
def test_deleting_a_user_publishes_the_user_and_each_key(alice, topics, django_capture_on_commit_callbacks):
    created = api_key_create(user=alice, name="laptop")
    with django_capture_on_commit_callbacks(execute=True):
        User.objects.filter(pk=alice.pk).delete()  # QuerySet.delete, as the admin's bulk action does
    assert f"user:{alice.pk}" in topics.seen
    assert f"key:{created.api_key.hashed_key}" in topics.seen


@pytest.mark.django_db
def test_deleting_a_key_row_publishes_it(alice, topics, django_capture_on_commit_callbacks):
    created = api_key_create(user=alice, name="laptop")
    with django_capture_on_commit_callbacks(execute=True):
        ApiKey.objects.filter(pk=created.api_key.pk).delete()
    assert topics.seen == [f"key:{created.api_key.hashed_key}"]


@pytest.mark.django_db
def test_deleting_plans_and_upstreams_publishes(topics, django_capture_on_commit_callbacks):
    spare = Plan.objects.create(
        slug="spare", name="Spare", requests_per_minute=1, requests_per_5_hours=1, requests_per_week=1, max_keys=1
    )
    upstream = Upstream.objects.create(name="spare", base_url="http://127.0.0.1:9")
    with django_capture_on_commit_callbacks(execute=True):
        spare.delete()
        upstream.delete()
    assert "plans" in topics.seen
    assert "routes" in topics.seen


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


def subscribers(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return dict(client.pubsub_numsub(channel())).get(channel().encode(), 0)
    except redis.ConnectionError:
        return 0
    finally:
        client.close()


def publish_raw(url: str, data: bytes | str) -> None:
    client = redis.Redis.from_url(url)
    client.publish(channel(), data)
    client.close()


def delivered_after_publishing(url: str, topics, topic: str) -> bool:
    publish_raw(url, topic)
    return topic in topics.seen


async def test_the_listener_outlives_bad_messages_and_a_redis_restart(private_redis, settings, topics):
    settings.REDIS_URL = private_redis.url
    listener = InvalidationListener()
    await listener.start()
    try:
        assert "*" in topics.seen  # a fresh subscription drops every cache
        for malformed in (b"\xff\xfe not utf-8", "user:not-a-number", "user:", ""):
            publish_raw(private_redis.url, malformed)
        publish_raw(private_redis.url, "key:after-the-bad-ones")
        await asyncio.to_thread(wait_until, lambda: "key:after-the-bad-ones" in topics.seen)

        private_redis.stop()
        topics.seen.clear()
        private_redis.start()  # the same port
        # What was published meanwhile is lost, so a resubscription drops every cache.
        await asyncio.to_thread(wait_until, lambda: subscribers(private_redis.url) == 1 and "*" in topics.seen)
        # Published again until seen: redis-py may still drop that first connection and subscribe
        # anew (one run in six on a busy machine), and a message sent in between reaches nobody.
        await asyncio.to_thread(
            wait_until, lambda: delivered_after_publishing(private_redis.url, topics, "key:after-the-restart")
        )
    finally:
        await listener.stop()


@pytest.fixture
def two_processes(gateway) -> Iterator[tuple[str, str]]:
    """Two more gateways, each a uvicorn process of its own, on the same database and Redis."""
    with gateway_process() as first, gateway_process() as second:
        yield first, second


def status_of(base_url: str, key: str) -> int:
    return httpx.post(base_url + "/v1/messages", json=HELLO, headers={"x-api-key": key}, timeout=30).status_code


def test_a_user_deleted_in_the_admin_is_refused_by_every_process(gateway, two_processes, admin_client):
    for base_url in two_processes:
        assert status_of(base_url, gateway.key) == 200  # cached there now

    response = admin_client.post(f"/admin/accounts/user/{gateway.user.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not User.objects.filter(pk=gateway.user.pk).exists()
    for base_url in two_processes:
        wait_until(lambda base_url=base_url: status_of(base_url, gateway.key) == 401, timeout=1.0)


@pytest.mark.parametrize(
    "invalidate",
    [
        lambda cache: cache.pop("key"),
        lambda cache: cache.pop_where(lambda value: True),
        lambda cache: cache.clear(),
    ],
    ids=["pop", "pop_where", "clear"],
)
async def test_a_load_an_invalidation_overtook_is_not_kept(invalidate):
    """A key revoked while its lookup is in flight: the lookup's answer still goes to the request
    that asked, but the next request loads again instead of finding it cached for a whole TTL."""
    cache: TtlCache[str, str] = TtlCache(ttl_seconds=60)
    reading, release = asyncio.Event(), asyncio.Event()

    async def load_before_the_change() -> str:
        reading.set()
        await release.wait()
        return "before"

    async def load_after_the_change() -> str:
        return "after"

    lookup = asyncio.create_task(cache.get_or_load("key", load_before_the_change))
    await reading.wait()
    invalidate(cache)
    release.set()
    assert await lookup == "before"
    assert cache.get("key") is None
    assert await cache.get_or_load("key", load_after_the_change) == "after"
    assert cache.get("key") == "after"
