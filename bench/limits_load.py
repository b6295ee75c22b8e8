"""Over-admissions: requests the limiter let through beyond a window, under bursts (must be 0).

    uv run python -m bench.limits_load --base-url http://127.0.0.1:PORT --body FILE --connections 64,256

Run by `bench.run` (the `limits` phase) against its gateway, with the bench's environment (its
database): it creates a plan allowing LIMIT requests a minute per key (no other window or slot
binds), fresh keys for each burst, each on an account of its own, then sends each burst at once,
every request on a connection of its own: on one key, and spread over KEYS keys. Prints one JSON
line per burst.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
from pathlib import Path

import aiohttp
import orjson

from bench.provision import HUGE, set_up_django

LIMIT = 5  # per key and minute: small, so that every burst goes well past it
KEYS = 8  # keys of the "many keys" bursts


def limited_keys(count: int) -> list[str]:
    from accounts.models import User
    from keys.services import api_key_create
    from plans.models import Plan

    plan, _ = Plan.objects.update_or_create(
        slug="bench-limited",
        defaults={
            "name": "Bench limited",
            "requests_per_minute": LIMIT,
            "requests_per_5_hours": HUGE,
            "requests_per_week": HUGE,
            "max_keys": 10_000,
            "concurrent_requests_per_key": HUGE,
            "is_public": False,
        },
    )
    run = secrets.token_hex(4)
    users = [User.objects.create_user(f"limits-{run}-{number}@bench.invalid", plan=plan) for number in range(count)]
    return [api_key_create(user=user, name="limits").secret for user in users]


async def burst(base_url: str, body: bytes, keys: list[str], connections: int) -> int:
    """Requests admitted of `connections` sent at once, spread evenly over `keys`."""
    connector = aiohttp.TCPConnector(limit=connections, force_close=True)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(number: int) -> int:
            headers = {"x-api-key": keys[number % len(keys)], "content-type": "application/json"}
            try:
                async with session.post(base_url + "/v1/messages", data=body, headers=headers) as response:
                    await response.read()
                    return response.status
            except aiohttp.ClientError:
                return 0

        statuses = await asyncio.gather(*(one(number) for number in range(connections)))
    return statuses.count(200)


def measure(base_url: str, body: bytes, connection_counts: list[int]) -> list[dict[str, object]]:
    rows = []
    for connections in connection_counts:
        for key_count in (1, KEYS):
            keys = limited_keys(key_count)
            per_key = connections // key_count
            allowed = key_count * min(per_key, LIMIT)
            admitted = asyncio.run(burst(base_url, body, keys, per_key * key_count))
            rows.append(
                {
                    "connections": per_key * key_count,
                    "keys": key_count,
                    "allowed": allowed,
                    "admitted": admitted,
                    "over_admitted": max(admitted - allowed, 0),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--body", required=True, type=Path)
    parser.add_argument("--connections", default="64,256,1024")
    args = parser.parse_args()
    set_up_django()
    rows = measure(args.base_url, args.body.read_bytes(), [int(count) for count in args.connections.split(",")])
    for row in rows:
        print(orjson.dumps(row).decode(), flush=True)


if __name__ == "__main__":
    main()
