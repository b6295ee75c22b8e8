"""How the limiter reaches Redis, three ways, under bursts of simultaneous decisions on one key.

    uv run python -m bench.limiter_transport                  # 64, 256 and 1,024 at once; 20 bursts each
    uv run python -m bench.limiter_transport --bursts 2       # a quick look

- `pool`: one EVALSHA per decision on redis-py's default pool capped at 100 connections, what the
  limiter did before: past 100 decisions in flight it raises instead of deciding.
- `blocking`: one EVALSHA per decision on a BlockingConnectionPool of 32 (a bounded wait).
- `pipelined`: gateway.limits.ScriptPipeline, decisions of one event-loop turn sent together over
  at most 4 connections (what the gateway uses).

Reports CPU per decision (this process: the client's side), wall time per burst, round trips
(socket writes) and decisions that failed. Uses its own key prefix on REDIS_URL and deletes it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

import redis.asyncio
import redis.asyncio.connection


def set_up_django(prefix: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmapi.settings")
    os.environ["REDIS_KEY_PREFIX"] = prefix
    import django

    django.setup()


class WriteCounter:
    """Counts socket writes of redis-py's asyncio connections: one per round trip."""

    def __init__(self) -> None:
        self.count = 0
        original = redis.asyncio.connection.AbstractConnection.send_packed_command
        counter = self

        async def counted(connection, command, check_health=True):
            counter.count += 1
            return await original(connection, command, check_health)

        redis.asyncio.connection.AbstractConnection.send_packed_command = counted


async def run_burst(decide, size: int) -> int:
    outcomes = await asyncio.gather(*(decide(index) for index in range(size)), return_exceptions=True)
    return sum(isinstance(outcome, BaseException) for outcome in outcomes)


async def measure(name: str, url: str, size: int, bursts: int, writes: WriteCounter) -> dict[str, object]:
    from gateway.limits import DECIDE_SCRIPT, Circuit, ScriptPipeline, script_arguments, script_keys
    from keys.selectors import KeyPrincipal

    key = KeyPrincipal(1, 1, True, "bench", "Bench", 10**9, 10**9, 10**9, 1, 10**9)
    keys = script_keys(key)

    if name == "pipelined":
        pool = redis.asyncio.BlockingConnectionPool.from_url(url, max_connections=4)
        client = redis.asyncio.Redis.from_pool(pool)
        await client.script_load(DECIDE_SCRIPT)
        pipeline = ScriptPipeline(client, 4, Circuit())

        async def decide(index: int) -> object:
            return await pipeline.call(keys, script_arguments(key, "admit", f"{name}-{index}", int(time.time() * 1000)))
    else:
        if name == "pool":
            client = redis.asyncio.Redis.from_url(url, max_connections=100)
        else:
            pool = redis.asyncio.BlockingConnectionPool.from_url(url, max_connections=32, timeout=10)
            client = redis.asyncio.Redis.from_pool(pool)
        script = client.register_script(DECIDE_SCRIPT)

        async def decide(index: int) -> object:
            member = f"{name}-{index}"
            return await script(keys=keys, args=script_arguments(key, "admit", member, int(time.time() * 1000)))

    await run_burst(decide, 8)  # connect and load the script before measuring
    writes.count = 0
    failed = 0
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    for _ in range(bursts):
        failed += await run_burst(decide, size)
    cpu, wall = time.process_time() - cpu_started, time.perf_counter() - wall_started
    await client.aclose()
    decisions = size * bursts
    return {
        "transport": name,
        "at once": size,
        "cpu_us_per_decision": round(cpu / decisions * 1e6, 1),
        "wall_ms_per_burst": round(wall / bursts * 1000, 2),
        "round_trips_per_decision": round(writes.count / decisions, 3),
        "failed": failed,
    }


async def main(url: str, sizes: list[int], bursts: int) -> None:
    writes = WriteCounter()
    for size in sizes:
        for name in ("pool", "blocking", "pipelined"):
            print(await measure(name, url, size, bursts, writes), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--sizes", default="64,256,1024")
    parser.add_argument("--bursts", type=int, default=20)
    args = parser.parse_args()
    prefix = f"bench-transport-{uuid.uuid4().hex[:8]}"
    set_up_django(prefix)
    try:
        asyncio.run(main(args.redis_url, [int(size) for size in args.sizes.split(",")], args.bursts))
    finally:
        import redis as sync_redis

        cleaner = sync_redis.Redis.from_url(args.redis_url)
        for stale in cleaner.scan_iter(f"{prefix}:*"):
            cleaner.delete(stale)
        cleaner.close()
