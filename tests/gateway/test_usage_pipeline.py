"""Usage reaches PostgreSQL exactly once: the stream, the drain, a real Celery worker, outages."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis
from django.db.models import Sum

from gateway.redis_keys import usage_stream_key
from gateway.usage.clean import RECORD_FIELD
from gateway.usage.drain import GROUP, drain_usage_stream, ensure_group
from gateway.usage.models import Granularity, UsageEvent, UsageRollup, UsageStart
from gateway.usage.record import UsageRecord
from gateway.usage.services import usage_delete_old_events, usage_ingest
from keys.services import api_key_create
from tests.helpers import wait_until
from tests.servers import RedisServer, celery_worker, gateway_process, kill_group

TOKEN_SUMS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def message(text: str, *, stream: bool = False) -> dict:
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 50,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    }


async def send_many(base_url: str, key: str, count: int) -> list[dict]:
    """`count` requests of varied sizes, 32 at a time; returns the usage each answer reported."""
    semaphore = asyncio.Semaphore(32)
    async with httpx.AsyncClient(timeout=60) as client:

        async def one(index: int) -> dict:
            async with semaphore:
                response = await client.post(
                    base_url + "/v1/messages", json=message("word " * (index % 40)), headers={"x-api-key": key}
                )
            assert response.status_code == 200, response.text
            return response.json()["usage"]

        return await asyncio.gather(*(one(index) for index in range(count)))


def expected_sums(usages: list[dict]) -> dict[str, int]:
    return {name: sum(usage[name] for usage in usages) for name in TOKEN_SUMS}


def rollup_sums(granularity: str) -> dict[str, int]:
    sums = UsageRollup.objects.filter(granularity=granularity).aggregate(
        **{name: Sum(name) for name in (*TOKEN_SUMS, "requests")}
    )
    return {name: sums[name] or 0 for name in sums}


def assert_exact(usages: list[dict]) -> None:
    assert UsageEvent.objects.count() == len(usages)
    expected = {**expected_sums(usages), "requests": len(usages)}
    assert rollup_sums(Granularity.HOUR) == expected
    assert rollup_sums(Granularity.DAY) == expected
    assert UsageEvent.objects.aggregate(total=Sum("input_tokens"))["total"] == expected["input_tokens"]


def record(key_id: int, user_id: int, request_id: str, **fields: object) -> UsageRecord:
    values = {"status": 200, "input_tokens": 10, "output_tokens": 5, "ended_at": datetime.now(UTC).timestamp()}
    return UsageRecord(request_id, key_id, user_id, "claude-sonnet-4-6", False, **{**values, **fields})


# The services, without processes.


@pytest.mark.django_db
def test_ingest_is_exactly_once_and_fills_hourly_and_daily_rollups(alice):
    key = api_key_create(user=alice, name="k").api_key
    at = datetime(2026, 11, 25, 13, 45, tzinfo=UTC).timestamp()
    records = [
        record(key.pk, alice.pk, "req_a", ended_at=at, cache_read_input_tokens=100),
        record(key.pk, alice.pk, "req_b", ended_at=at + 3600, status=529, error_type="overloaded_error"),
    ]
    assert usage_ingest(records=records) == 2
    assert usage_ingest(records=records) == 0  # redelivered: nothing counted twice
    hours = UsageRollup.objects.filter(granularity=Granularity.HOUR).order_by("period_start")
    assert [(row.period_start.hour, row.requests, row.errors) for row in hours] == [(13, 1, 0), (14, 1, 1)]
    day = UsageRollup.objects.get(granularity=Granularity.DAY)
    assert (day.period_start, day.requests, day.errors) == (datetime(2026, 11, 25, tzinfo=UTC), 2, 1)
    assert (day.input_tokens, day.output_tokens, day.cache_read_input_tokens) == (20, 10, 100)


@pytest.mark.django_db
def test_retention_deletes_old_events_and_keeps_rollups(alice):
    key = api_key_create(user=alice, name="k").api_key
    now = datetime.now(UTC)
    usage_ingest(
        records=[
            record(key.pk, alice.pk, "req_old", ended_at=(now - timedelta(days=31)).timestamp()),
            record(key.pk, alice.pk, "req_new", ended_at=(now - timedelta(days=29)).timestamp()),
        ]
    )
    assert usage_delete_old_events(now=now) == 1
    assert list(UsageEvent.objects.values_list("request_id", flat=True)) == ["req_new"]
    assert rollup_sums(Granularity.DAY)["requests"] == 2


@pytest.mark.django_db
def test_drain_claims_what_a_dead_consumer_left_pending(alice, stream_client, settings):
    key = api_key_create(user=alice, name="k").api_key
    ensure_group(stream_client, usage_stream_key(0))
    for index in range(5):
        stream_client.xadd(usage_stream_key(0), {"r": record(key.pk, alice.pk, f"req_{index}").to_json()})
    stream_client.xreadgroup(GROUP, "a-worker-that-died", {usage_stream_key(0): ">"}, count=3)  # read, never acked
    settings.USAGE_CLAIM_IDLE_SECONDS = 0
    assert drain_usage_stream(client=stream_client) == 5
    assert UsageEvent.objects.count() == 5
    assert stream_client.xlen(usage_stream_key(0)) == 0
    assert stream_client.xpending(usage_stream_key(0), GROUP)["pending"] == 0


# The pipeline, with real processes.


def test_a_thousand_requests_become_exactly_a_thousand_events(unlimited, stream_client, tmp_path):
    usages = asyncio.run(send_many(unlimited.base_url, unlimited.key, 1000))
    with celery_worker(tmp_path, USAGE_DRAIN_INTERVAL_SECONDS="0.5"):
        wait_until(lambda: UsageEvent.objects.count() == 1000, timeout=60)
    assert_exact(usages)


def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(unlimited, stream_client, tmp_path):
    usages = asyncio.run(send_many(unlimited.base_url, unlimited.key, 1000))
    wait_until(lambda: records_in_stream(stream_client) == 1000, timeout=10)
    small_batches = {"USAGE_DRAIN_INTERVAL_SECONDS": "0.5", "USAGE_DRAIN_BATCH_SIZE": "50"}
    with celery_worker(tmp_path, **small_batches) as worker:
        wait_until(lambda: UsageEvent.objects.count() >= 100, timeout=60)
        kill_group(worker, signal.SIGKILL)
    assert UsageEvent.objects.count() < 1000  # it really died part way
    with celery_worker(tmp_path, **small_batches, USAGE_CLAIM_IDLE_SECONDS="1"):
        wait_until(lambda: UsageEvent.objects.count() == 1000, timeout=60)
    assert_exact(usages)
    assert stream_client.xpending(usage_stream_key(0), GROUP)["pending"] == 0


def records_in_stream(client: redis.Redis) -> int:
    """Entries holding a record; the stream also carries admissions and refusal counts."""
    return sum(RECORD_FIELD in fields for _, fields in client.xrange(usage_stream_key(0)))


def test_records_wait_in_process_while_redis_is_down(unlimited):
    private_redis = RedisServer().start()
    try:
        with gateway_process(REDIS_URL=private_redis.url) as base_url:
            private_redis.stop()
            usages = asyncio.run(send_many(base_url, unlimited.key, 20))
            private_redis.start()  # the gateway's buffered records go out once it is back
            client = redis.Redis.from_url(private_redis.url)
            wait_until(lambda: records_in_stream(client) == 20, timeout=30)
            assert drain_usage_stream(client=client) == 20
    finally:
        private_redis.stop()
    assert_exact(usages)


def test_with_the_documented_persistence_a_redis_restart_loses_nothing(unlimited, tmp_path):
    """No worker runs while 1,000 requests are served; Redis restarts (persisting as
    docs/operations.md says); then a worker starts: exactly 1,000 events, no admission left open."""
    private_redis = RedisServer(data_dir=tmp_path).start()
    try:
        with gateway_process(REDIS_URL=private_redis.url) as base_url:
            usages = asyncio.run(send_many(base_url, unlimited.key, 1000))
            client = redis.Redis.from_url(private_redis.url)
            wait_until(lambda: records_in_stream(client) == 1000, timeout=30)
        private_redis.stop()
        private_redis.start()
        with celery_worker(tmp_path, REDIS_URL=private_redis.url, USAGE_DRAIN_INTERVAL_SECONDS="0.5"):
            wait_until(lambda: UsageEvent.objects.count() == 1000, timeout=60)
            wait_until(lambda: client.xlen(usage_stream_key(0)) == 0, timeout=30)
    finally:
        private_redis.stop()
    assert_exact(usages)
    assert not UsageStart.objects.exists()  # every admission written ahead was completed by its record


def test_shutdown_with_redis_away_writes_the_records_to_the_database(unlimited):
    private_redis = RedisServer().start()
    try:
        with gateway_process(REDIS_URL=private_redis.url) as base_url:
            private_redis.stop()
            usages = asyncio.run(send_many(base_url, unlimited.key, 5))
    finally:
        private_redis.stop()
    assert_exact(usages)  # written during the gateway's shutdown


def test_embedded_mode_writes_usage_to_the_database_in_process(unlimited):
    with gateway_process(REDIS_URL="") as base_url:
        usages = asyncio.run(send_many(base_url, unlimited.key, 30))
        wait_until(lambda: UsageEvent.objects.count() == 30, timeout=10)
    assert_exact(usages)


@pytest.mark.django_db
def test_ingest_stamps_each_keys_last_use_forward_only(alice):
    key = api_key_create(user=alice, name="k").api_key
    later = datetime(2026, 11, 25, 12, tzinfo=UTC)
    usage_ingest(records=[record(key.pk, alice.pk, "req_late", ended_at=later.timestamp())])
    usage_ingest(records=[record(key.pk, alice.pk, "req_early", ended_at=later.timestamp() - 60)])
    key.refresh_from_db()
    assert key.last_used_at == later
