"""Nothing admitted goes unrecorded (issue 11): the limiter writes each admission ahead to the
usage stream in its own round trip; the request's record completes it, and an admission whose
record never comes (its gateway process died) is stored as interrupted."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from django.conf import settings
from django.db.models import Sum

from gateway.redis_keys import usage_stream_key
from gateway.usage.clean import GIVEN_BACK_FIELD, RECORD_FIELD, STARTED_FIELD
from gateway.usage.drain import drain_usage_stream
from gateway.usage.models import Granularity, UsageEvent, UsageRollup, UsageStart
from gateway.usage.record import INTERRUPTED, AdmissionStart
from gateway.usage.services import usage_ingest, usage_store_interrupted
from keys.services import api_key_create
from tests.gateway.test_usage_pipeline import message, record, send_many
from tests.helpers import wait_until
from tests.servers import gateway_process_with_pid

LONG_STREAM = {"x-simulator-scenario": "slow", "x-simulator-deltas": "600", "x-simulator-delay-ms": "100"}


def entries_with(client, field: bytes) -> int:
    return sum(field in fields for _, fields in client.xrange(usage_stream_key(0)))


def after_the_timeout() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=settings.USAGE_INTERRUPTED_AFTER_SECONDS + 1)


async def open_streams(base_url: str, key: str, count: int) -> list[asyncio.Task]:
    """`count` long streams, each reading until its connection is cut."""
    client = httpx.AsyncClient(timeout=120)

    async def one() -> None:
        try:
            async with client.stream(
                "POST",
                base_url + "/v1/messages",
                json=message("hi", stream=True),
                headers={"x-api-key": key, **LONG_STREAM},
            ) as response:
                async for _ in response.aiter_bytes():
                    pass
        except httpx.HTTPError:
            pass  # cut by the kill: expected

    return [asyncio.create_task(one()) for _ in range(count)]


def test_sigkill_in_the_middle_of_100_streams_leaves_exactly_one_row_per_admitted_request(unlimited, stream_client):
    with gateway_process_with_pid() as (base_url, pid):
        finished = asyncio.run(send_many(base_url, unlimited.key, 20))
        wait_until(lambda: entries_with(stream_client, RECORD_FIELD) == 20)  # out of the process before the kill

        async def kill_during_streams() -> None:
            streams = await open_streams(base_url, unlimited.key, 100)
            await asyncio.to_thread(wait_until, lambda: unlimited.simulator.stats()["active_streams"] >= 100, 60)
            os.kill(pid, signal.SIGKILL)
            await asyncio.gather(*streams)

        asyncio.run(kill_during_streams())

    drain_usage_stream(client=stream_client)
    assert UsageEvent.objects.count() == 20  # the 100 cut streams have no record yet
    assert UsageStart.objects.count() == 100
    assert usage_store_interrupted() == 0  # not before the timeout: their records could still come
    assert usage_store_interrupted(now=after_the_timeout()) == 100

    assert UsageEvent.objects.count() == 120
    assert UsageEvent.objects.filter(error_type=INTERRUPTED).count() == 100
    assert not UsageStart.objects.filter(interrupted_at=None).exists()  # kept a day, marked, for a late record
    rollups = UsageRollup.objects.filter(granularity=Granularity.HOUR).aggregate(
        requests=Sum("requests"), errors=Sum("errors"), input_tokens=Sum("input_tokens")
    )
    assert rollups == {
        "requests": 120,
        "errors": 100,
        "input_tokens": sum(usage["input_tokens"] for usage in finished),
    }
    assert usage_store_interrupted(now=after_the_timeout()) == 0  # nothing twice
    assert usage_store_interrupted(now=after_the_timeout() + timedelta(days=2)) == 0
    assert not UsageStart.objects.exists()  # forgotten once no record can come any more


def test_an_admission_and_its_record_leave_no_waiting_row(unlimited, stream_client):
    usages = asyncio.run(send_many(unlimited.base_url, unlimited.key, 30))
    wait_until(lambda: entries_with(stream_client, RECORD_FIELD) == 30)
    assert entries_with(stream_client, STARTED_FIELD) == 30  # written ahead, one per admission
    assert drain_usage_stream(client=stream_client) == 30
    assert UsageStart.objects.count() == 0
    assert UsageEvent.objects.count() == len(usages)


def test_refusals_after_admission_take_their_admission_back_out_of_the_stream(unlimited, stream_client):
    with httpx.Client(base_url=unlimited.base_url, headers={"x-api-key": unlimited.key}) as client:
        for _ in range(50):
            assert client.post("/v1/messages", json={**message("hi"), "model": "no-such-model"}).status_code == 404
    assert entries_with(stream_client, STARTED_FIELD) == 0  # nothing left behind by a flood of 404s
    assert entries_with(stream_client, GIVEN_BACK_FIELD) == 0


@pytest.mark.django_db
def test_an_admission_read_by_the_drain_and_then_given_back_is_forgotten(alice, stream_client):
    key = api_key_create(user=alice, name="k").api_key
    started_ms = int(datetime.now(UTC).timestamp() * 1000)
    usage_ingest(entries=[{STARTED_FIELD: AdmissionStart("req_given", key.pk, alice.pk, started_ms).to_json()}])
    assert UsageStart.objects.count() == 1
    usage_ingest(entries=[{GIVEN_BACK_FIELD: b"req_given"}])
    assert UsageStart.objects.count() == 0
    assert usage_store_interrupted(now=after_the_timeout()) == 0


@pytest.mark.django_db
def test_a_record_later_than_the_timeout_replaces_its_interrupted_event(alice):
    key = api_key_create(user=alice, name="k").api_key
    started_ms = int(datetime.now(UTC).timestamp() * 1000)
    usage_ingest(entries=[{STARTED_FIELD: AdmissionStart("req_slow", key.pk, alice.pk, started_ms).to_json()}])
    assert usage_store_interrupted(now=after_the_timeout()) == 1

    assert usage_ingest(records=[record(key.pk, alice.pk, "req_slow", input_tokens=70, output_tokens=7)]) == 1

    event = UsageEvent.objects.get()
    assert (event.error_type, event.input_tokens) == ("", 70)
    for granularity in (Granularity.HOUR, Granularity.DAY):
        sums = UsageRollup.objects.filter(granularity=granularity).aggregate(
            requests=Sum("requests"), errors=Sum("errors"), input_tokens=Sum("input_tokens")
        )
        assert sums == {"requests": 1, "errors": 0, "input_tokens": 70}
