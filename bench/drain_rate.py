"""The usage drain's rate: events per second from the Redis stream into PostgreSQL (rollups included).

    .venv/bin/python -m bench.drain_rate [--events 20000] [--repeats 3]

It recreates its own database (llmapi_bench_drain), fills the usage stream with what requests of
several keys and models leave there (each admission, written ahead, then its record), under a
private Redis key prefix, runs the same drain the Celery task runs, and reports the median rate
of the repeats, in records (events) per second, to stdout and bench/results/drain-<time>.md.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bench.provision import recreate_database, set_up_django

DATABASE_URL = "postgres://postgres@127.0.0.1:5432/llmapi_bench_drain"
RESULTS = Path(__file__).resolve().parent / "results"
MODELS = ["claude-sonnet-4-6", "claude-opus-4-6", "claude-haiku-4-5"]


def configure_environment() -> None:
    os.environ.setdefault("DATABASE_URL", DATABASE_URL)
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret")
    os.environ.setdefault("API_KEY_HASH_SECRET", "bench-only-hash-secret")
    os.environ.setdefault("UPSTREAM_SECRET_KEYS", base64.urlsafe_b64encode(os.urandom(32)).decode())
    os.environ["REDIS_KEY_PREFIX"] = f"llmapi-bench-{uuid.uuid4().hex[:8]}"
    os.environ["USAGE_CLAIM_IDLE_SECONDS"] = "3600"  # nothing here is abandoned


IN_FLIGHT = 200  # requests admitted but not ended at any moment: a record trails its admission by this many


def fill_stream(client, keys: list, events: int, run: int) -> None:
    """What `events` requests leave in the stream, as in production: each admission written ahead
    by the limiter, and its record when the request ends, IN_FLIGHT admissions later."""
    from gateway.redis_keys import usage_stream_key
    from gateway.usage.clean import RECORD_FIELD, STARTED_FIELD
    from gateway.usage.record import AdmissionStart

    now = time.time()
    stream = usage_stream_key(0)
    records = [bench_record(keys, run, index, now) for index in range(events)]
    pipe = client.pipeline(transaction=False)
    for index in range(events + IN_FLIGHT):
        if index < events:
            admitted = records[index]
            start = AdmissionStart(
                admitted.request_id, admitted.key_id, admitted.user_id, int(admitted.ended_at * 1000)
            )
            pipe.xadd(stream, {STARTED_FIELD: start.to_json()})
        if index >= IN_FLIGHT:
            pipe.xadd(stream, {RECORD_FIELD: records[index - IN_FLIGHT].to_json()})
        if index % 1000 == 999:
            pipe.execute()
    pipe.execute()


def bench_record(keys: list, run: int, index: int, now: float):
    from gateway.usage.record import UsageRecord

    key = keys[index % len(keys)]
    return UsageRecord(
        f"req_bench_{run}_{index}",
        key.pk,
        key.user_id,
        MODELS[index % len(MODELS)],
        index % 2 == 0,
        status=200,
        input_tokens=100 + index % 50,
        output_tokens=20,
        ended_at=now - (index % 7200),  # spread over two hours: several rollup rows
    )


def measure(events: int, repeats: int) -> list[float]:
    import redis
    from django.conf import settings
    from django.core.management import call_command

    from accounts.models import User
    from gateway.redis_keys import usage_stream_key
    from gateway.usage.drain import drain_usage_stream
    from gateway.usage.models import UsageStart
    from keys.models import ApiKey
    from keys.services import api_key_create
    from plans.models import Plan

    call_command("migrate", verbosity=0, interactive=False)
    Plan.objects.filter(slug="free").update(max_keys=100)
    user = User.objects.create_user("drain@bench.invalid")
    for number in range(10):
        api_key_create(user=user, name=f"bench {number}")
    keys = list(ApiKey.objects.all())
    client = redis.Redis.from_url(settings.REDIS_URL)
    rates = []
    try:
        for run in range(repeats):
            fill_stream(client, keys, events, run)
            started = time.perf_counter()
            stored = drain_usage_stream(client=client, time_budget_seconds=3600)
            elapsed = time.perf_counter() - started
            if stored != events or UsageStart.objects.exists():
                raise SystemExit(f"drained {stored} of {events} events, {UsageStart.objects.count()} admissions open")
            rates.append(events / elapsed)
            print(f"run {run + 1}: {events} events in {elapsed:.2f} s = {events / elapsed:,.0f} events/s")
    finally:
        client.delete(usage_stream_key(0))
        client.close()
    return rates


def report(events: int, rates: list[float]) -> str:
    from django.conf import settings

    return (
        f"# Usage drain rate, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n"
        f"{events:,} events per run (each after its admission, {IN_FLIGHT} admissions ahead), "
        f"batches of {settings.USAGE_DRAIN_BATCH_SIZE} stream entries, {len(rates)} runs, "
        "PostgreSQL and Redis on this machine (2 cores).\n\n"
        "| figure | value |\n|---|---:|\n"
        f"| median drain rate | {statistics.median(rates):,.0f} events/s |\n"
        f"| slowest run | {min(rates):,.0f} events/s |\n"
        f"| fastest run | {max(rates):,.0f} events/s |\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    configure_environment()
    recreate_database(os.environ["DATABASE_URL"])
    set_up_django()
    rates = measure(arguments.events, arguments.repeats)
    text = report(arguments.events, rates)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"drain-{datetime.now(UTC):%Y%m%d-%H%M%S}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
