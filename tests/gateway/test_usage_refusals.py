"""Refusals are counters, not events, and the usage stream never grows past its ceiling."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from django.db.models import Sum

from gateway.redis_keys import usage_stream_key
from gateway.usage.drain import drain_usage_stream
from gateway.usage.models import RefusalRollup, UsageEvent
from gateway.usage.writer import usage_writer
from tests.gateway.conftest import move_to_new_plan
from tests.gateway.test_usage_pipeline import records_in_stream
from tests.helpers import wait_until

HELLO = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "Hello"}]}


@pytest.fixture
def two_a_minute(gateway):
    """Alice on a plan of two requests a minute, set before any request (no cached principal yet)."""
    return move_to_new_plan(gateway, "tiny", requests_per_minute=2, requests_per_5_hours=1_000, requests_per_week=1_000)


async def flood(base_url: str, key: str) -> list[int]:
    """Unknown models (one with a NUL) and a refused key, then more messages than the plan allows.

    The limiter decides before a body is read, so a request with an unknown model holds a place in
    the minute until its 404 gives it back: two at a time keep the first part within the plan's two.
    """
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

        async def post(semaphore: asyncio.Semaphore, body: bytes | dict, api_key: str) -> int:
            async with semaphore:
                options = {"content": body} if isinstance(body, bytes) else {"json": body}
                response = await client.post(
                    "/v1/messages", headers={"x-api-key": api_key, "content-type": "application/json"}, **options
                )
                return response.status_code

        two_at_a_time, many_at_once = asyncio.Semaphore(2), asyncio.Semaphore(16)
        unknown = [post(two_at_a_time, {**HELLO, "model": f"no-such-model-{n % 3}"}, key) for n in range(150)]
        nul = [post(two_at_a_time, b'{"model":"x\\u0000","max_tokens":5,"messages":[]}', key) for _ in range(50)]
        bad_key = [post(many_at_once, HELLO, "sk-llmapi-" + "0" * 44) for _ in range(50)]
        refused = await asyncio.gather(*unknown, *nul, *bad_key)
        limited = [post(many_at_once, HELLO, key) for _ in range(100)]
        return [*refused, *await asyncio.gather(*limited)]


def refusals_with(status: int) -> int:
    return RefusalRollup.objects.filter(status=status).aggregate(total=Sum("count"))["total"] or 0


def test_a_flood_of_refusals_does_not_grow_the_stream_and_the_rollups_count_it(two_a_minute, stream_client):
    statuses = asyncio.run(flood(two_a_minute.base_url, two_a_minute.key))
    assert (statuses.count(404), statuses.count(401), statuses.count(429), statuses.count(200)) == (200, 50, 98, 2)
    wait_until(lambda: usage_writer.pending == 0)
    # Two records, and the counts of 348 refusals folded into an entry a second at most.
    wait_until(lambda: stream_client.xlen(usage_stream_key(0)) >= 3)
    assert stream_client.xlen(usage_stream_key(0)) < 348 / 4

    assert drain_usage_stream(client=stream_client) == 2
    assert UsageEvent.objects.count() == 2
    assert (refusals_with(404), refusals_with(401), refusals_with(429)) == (200, 50, 98)
    assert set(RefusalRollup.objects.filter(status=404).values_list("model", flat=True)) == {
        "no-such-model-0",
        "no-such-model-1",
        "no-such-model-2",
        "x",  # the NUL cleaned away
    }
    refused_key = RefusalRollup.objects.get(status=401)
    assert (refused_key.api_key, refused_key.user) == (None, None)
    limited = RefusalRollup.objects.get(status=429)
    # Refused before its body was read: the key and account are known, the model is not.
    assert (limited.api_key.user, limited.user, limited.model) == (two_a_minute.user, two_a_minute.user, "")


def test_past_the_streams_ceiling_records_go_to_the_database(gateway, stream_client, settings):
    settings.USAGE_STREAM_MAX_LENGTH = 5
    with httpx.Client(base_url=gateway.base_url, headers={"x-api-key": gateway.key}) as client:
        for _ in range(30):
            assert client.post("/v1/messages", json=HELLO).status_code == 200
    wait_until(lambda: records_in_stream(stream_client) + UsageEvent.objects.count() == 30)
    in_stream = records_in_stream(stream_client)
    assert stream_client.xlen(usage_stream_key(0)) <= 5  # records and the admissions written ahead
    assert drain_usage_stream(client=stream_client) == in_stream
    assert UsageEvent.objects.count() == 30
