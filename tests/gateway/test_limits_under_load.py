"""Limits against an attacker's load, in the production shape: uvicorn with two workers on one Redis.

Each count here is exact: the windows admit their limit and not one request more, however many
requests arrive at once, however keys are rotated, and whatever size of body is sent.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import httpx
import pytest
import redis
from django.conf import settings

from gateway.redis_keys import key_concurrency_key
from keys.models import ApiKey
from keys.services import api_key_create, api_key_revoke
from plans.models import Plan
from tests.helpers import wait_until
from tests.servers import RedisServer, gateway_process, gateway_process_with_pid

HELLO = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "Hello"}]}
MB = 1024 * 1024


@pytest.fixture
def two_workers(gateway) -> Iterator[str]:
    # Every client here is one address; the per-address limit on key lookups in flight (a guard
    # against floods of made-up keys) would refuse the first requests of many new keys at once.
    with gateway_process(workers=2, GATEWAY_KEY_LOOKUPS_PER_CLIENT="64") as base_url:
        yield base_url


def put_on_plan(gateway, slug: str, **limits: int) -> None:
    """Move Alice to a plan; with `limits`, edit the plan first (published to every process)."""
    plan = Plan.objects.get(slug=slug)
    for name, value in limits.items():
        setattr(plan, name, value)
    plan.save()
    gateway.user.plan = plan
    gateway.user.save()


def new_key(gateway, name: str) -> str:
    return api_key_create(user=gateway.user, name=name).secret


SLOW = {**HELLO, "messages": [{"role": "user", "content": "scenario:slow"}]}
SLOW_HEADERS = {"x-simulator-delay-ms": "300"}  # 20 deltas: about 6 s in flight


async def post_all(
    base_url: str, keys: list[str], per_key: int, body: dict | None = None, headers: dict | None = None
) -> list[int]:
    """`per_key` requests on each key, all at once, each on a connection of its own: their statuses,
    0 for a request whose connection was closed while it was still uploading (refused early)."""
    total = len(keys) * per_key
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=total)) as client:
        requests = [
            client.post(base_url + "/v1/messages", json=body or HELLO, headers={"x-api-key": key, **(headers or {})})
            for key in keys
            for _ in range(per_key)
        ]
        responses = await asyncio.gather(*requests, return_exceptions=True)
    for response in responses:
        if isinstance(response, BaseException) and not isinstance(response, httpx.TransportError):
            raise response
    return [0 if isinstance(response, BaseException) else response.status_code for response in responses]


# Slots in flight are plentiful here, so that the windows are what is measured; the next test
# measures the slots.
@pytest.mark.parametrize(("slug", "concurrent", "limit"), [("free", 300, 10), ("max-20x", 500, 120)])
def test_one_key_under_a_burst_gets_exactly_its_minute(gateway, two_workers, slug, concurrent, limit):
    put_on_plan(gateway, slug, concurrent_requests_per_key=1000)
    statuses = asyncio.run(post_all(two_workers, [gateway.key], concurrent))
    assert statuses.count(200) == limit
    assert statuses.count(429) == concurrent - limit
    assert len(gateway.simulator.requests()) == limit


def test_sixteen_keys_of_sixteen_accounts_each_get_exactly_their_minute(gateway, two_workers):
    from accounts.models import User

    free = Plan.objects.get(slug="free")
    free.concurrent_requests_per_key = 1000
    free.save()
    keys = [
        api_key_create(user=User.objects.create_user(f"user{number}@example.com", "pw", plan=free), name="k").secret
        for number in range(16)
    ]
    statuses = asyncio.run(post_all(two_workers, keys, 30))
    assert statuses.count(200) == 160
    assert len(gateway.simulator.requests()) == 160


def test_requests_in_flight_per_key_are_capped_then_freed(gateway, two_workers):
    put_on_plan(gateway, "free")  # 4 in flight per key
    statuses = asyncio.run(post_all(two_workers, [gateway.key], 9, SLOW, SLOW_HEADERS))
    assert statuses.count(200) == 4
    assert statuses.count(429) == 5
    # Every slot is freed with its request's usage record, written just after the answer ends.
    in_flight = key_concurrency_key(user_id=gateway.user.pk, key_id=ApiKey.objects.get(user=gateway.user).pk)
    store = redis.Redis.from_url(settings.REDIS_URL)
    wait_until(lambda: store.zcard(in_flight) == 0)
    store.close()
    assert asyncio.run(post_all(two_workers, [gateway.key], 4)) == [200] * 4


def test_a_refusal_for_slots_in_flight_says_when_to_retry(gateway):
    put_on_plan(gateway, "free", concurrent_requests_per_key=1)

    async def one_slow_one_quick() -> httpx.Response:
        async with httpx.AsyncClient(timeout=60, headers={"x-api-key": gateway.key}) as client:
            held = asyncio.ensure_future(
                client.post(gateway.base_url + "/v1/messages", json=SLOW, headers=SLOW_HEADERS)
            )
            await asyncio.to_thread(wait_until, lambda: bool(gateway.simulator.requests()))
            refused = await client.post(gateway.base_url + "/v1/messages", json=HELLO)
            assert (await held).status_code == 200
            return refused

    refused = asyncio.run(one_slow_one_quick())
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert "1 requests in flight at once per key" in refused.json()["error"]["message"]


def test_rotating_keys_never_beats_the_account_ceiling(gateway, two_workers):
    put_on_plan(gateway, "free")  # 2 keys x 10 per minute
    ApiKey.objects.filter(user=gateway.user).update(revoked_at="2026-01-01T00:00Z")
    admitted = 0
    for turn in range(6):
        key = new_key(gateway, f"rotation {turn}")
        admitted += asyncio.run(post_all(two_workers, [key], 12)).count(200)
        api_key_revoke(user=gateway.user, key_id=ApiKey.objects.active().get(user=gateway.user).pk)
    assert admitted == 20


def test_redis_stopped_mid_burst_serves_requests_and_counts_them_once_back(gateway):
    put_on_plan(
        gateway,
        "free",
        requests_per_minute=1000,
        requests_per_5_hours=1000,
        requests_per_week=1000,
        concurrent_requests_per_key=1000,
    )
    private_redis = RedisServer().start()
    try:
        with gateway_process(workers=2, REDIS_URL=private_redis.url) as base_url:
            assert asyncio.run(post_all(base_url, [gateway.key], 5)) == [200] * 5
            private_redis.stop()
            unchecked = 0
            for _ in range(4):  # a burst, then more while Redis stays away
                unchecked += asyncio.run(post_all(base_url, [gateway.key], 10)).count(200)
            assert unchecked == 40  # nobody is refused because Redis went away

            private_redis.start()  # back, and empty: it keeps nothing on disk
            after = []

            def long_windows_count_the_outage() -> bool:
                nonlocal unchecked
                response = httpx.post(base_url + "/v1/messages", json=HELLO, headers={"x-api-key": gateway.key})
                assert response.status_code == 200
                if "llmapi-ratelimit-requests-5h-limit" not in response.headers:
                    # Still admitted unchecked: a worker waits a moment before it asks Redis again (on a
                    # busy machine, long enough for several requests). Counted once Redis answers, too.
                    unchecked += 1
                    return False
                after.append(response)
                counted = [
                    int(response.headers[f"llmapi-ratelimit-requests-{name}-limit"])
                    - int(response.headers[f"llmapi-ratelimit-requests-{name}-remaining"])
                    for name in ("5h", "week")
                ]
                return counted == [unchecked + len(after)] * 2

            wait_until(long_windows_count_the_outage, timeout=30)
    finally:
        private_redis.stop()


def test_a_key_over_its_window_is_refused_before_its_body_is_sent(gateway):
    put_on_plan(gateway, "free")
    for _ in range(10):
        assert httpx.post(gateway.base_url + "/v1/messages", json=HELLO, headers={"x-api-key": gateway.key}).is_success
    port = int(gateway.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        # Announce 30 MB and send none of it: the answer must come anyway.
        connection.sendall(
            b"POST /v1/messages HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n"
            + f"x-api-key: {gateway.key}\r\ncontent-length: {30 * MB}\r\n\r\n".encode()
        )
        head = connection.recv(65536)
    assert head.startswith(b"HTTP/1.1 429 ")
    assert b"rate_limit_error" in head or b"retry-after" in head


def rss_of(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of a process, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return {name: int(fields[name].split()[0]) * 1024 for name in ("VmRSS", "VmHWM")}


def test_forty_large_bodies_at_once_stay_under_the_in_flight_ceiling(gateway):
    ceiling = 96 * MB
    # No input token limit: a 30 MB body would fill it, and the other 39 would be refused before uploading.
    put_on_plan(gateway, "free", concurrent_requests_per_key=1000, input_tokens_per_minute=None)
    big = {**HELLO, "messages": [{"role": "user", "content": "x" * (30 * MB)}]}
    with gateway_process_with_pid(GATEWAY_MAX_INFLIGHT_BODY_BYTES=str(ceiling)) as (base_url, pid):
        assert asyncio.run(post_all(base_url, [gateway.key], 1)) == [200]  # warm: caches, pools
        before = rss_of(pid)["VmRSS"]
        statuses = asyncio.run(post_all(base_url, [gateway.key], 40, big))
        peak = rss_of(pid)["VmHWM"]
    assert statuses.count(200) <= 10  # the Free minute
    assert set(statuses) <= {0, 200, 429, 529}  # 0: refused while still uploading
    # The rest of the minute after the warm-up request: admitted, then answered or refused for room.
    assert statuses.count(200) + statuses.count(529) + statuses.count(0) >= 10 - 1
    assert peak - before < ceiling
