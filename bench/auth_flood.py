"""A legitimate key's first request during a flood of made-up keys (issue 10).

    uv run python -m bench.auth_flood [--seconds 20] [--rate 200] [--addresses 100] [--first-requests 20]

It recreates its own database (llmapi_bench_auth), starts the gateway as production runs it
(uvicorn, 2 workers, DEBUG=0) and measures the first request (`GET /v1/models`, which needs the
key looked up and the limiter asked) of fresh keys, one after another: first on a quiet gateway,
then while made-up keys with a valid checksum arrive at `--rate` per second from `--addresses`
loopback addresses (127.0.0.0/8 is all loopback). It reports the latencies, what the flood was
answered (401 while an address is under the failed-authentication limit, 429 after), and the
workers' memory before and after, to stdout and bench/results/auth-flood-<time>.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench import procstat
from bench.netutil import free_port, raise_open_file_limit, stop_group, wait_for_port
from bench.provision import PROJECT_DIR, recreate_database, set_up_django
from bench.run import delete_redis_keys
from bench.stats import median, percentile

DATABASE_URL = "postgres://postgres@127.0.0.1:5432/llmapi_bench_auth"
RESULTS = Path(__file__).resolve().parent / "results"
LEGITIMATE_ADDRESS = "127.0.0.2"


@dataclass
class Figures:
    quiet_ms: list[float] = field(default_factory=list)
    flooded_ms: list[float] = field(default_factory=list)
    flood_answers: Counter[int] = field(default_factory=Counter)
    flood_sent: int = 0
    rss_before: int = 0
    rss_after: int = 0


def configure_environment() -> None:
    secret = secrets.token_urlsafe(32)
    os.environ.setdefault("DATABASE_URL", DATABASE_URL)
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    os.environ["SECRET_KEY"] = secret
    os.environ["API_KEY_HASH_SECRET"] = secrets.token_urlsafe(32)
    os.environ["REDIS_KEY_PREFIX"] = f"llmapi-bench-auth-{uuid.uuid4().hex[:8]}"
    os.environ["DEBUG"] = "0"
    os.environ["LOG_LEVEL"] = "WARNING"


def fresh_keys(count: int) -> list[str]:
    """Keys nobody has used yet, on a plan that never limits."""
    from django.core.management import call_command

    from accounts.models import User
    from keys.services import api_key_create
    from plans.models import Plan

    call_command("migrate", verbosity=0, interactive=False)
    huge = 1_000_000_000
    plan = Plan.objects.create(
        slug="bench-auth",
        name="Bench",
        requests_per_minute=huge,
        requests_per_5_hours=huge,
        requests_per_week=huge,
        max_keys=count,
        is_public=False,
    )
    user = User.objects.create_user("auth@bench.invalid", plan=plan)
    return [api_key_create(user=user, name=f"bench {number}").secret for number in range(count)]


def start_gateway(port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", "llmapi.asgi:application", "--port", str(port), "--workers", "2"]
    command += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
    command += ["--forwarded-allow-ips", ""]  # the client address is the TCP peer
    process = subprocess.Popen(command, cwd=PROJECT_DIR, start_new_session=True)
    wait_for_port(port, process, timeout=120)
    return process


def workers_rss(process: subprocess.Popen[bytes]) -> int:
    return sum(info.rss_bytes for info in procstat.worker_processes([process.pid]))


async def first_requests(base_url: str, keys: list[str]) -> list[float]:
    """Each key's first request, one at a time, each on a new connection."""
    transport = httpx.AsyncHTTPTransport(local_address=LEGITIMATE_ADDRESS)
    latencies = []
    async with httpx.AsyncClient(base_url=base_url, transport=transport, timeout=60) as client:
        for key in keys:
            started = time.perf_counter()
            response = await client.get("/v1/models", headers={"x-api-key": key, "connection": "close"})
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"a legitimate key got {response.status_code}: {response.text[:200]}")
            await asyncio.sleep(0.05)
    return latencies


async def flood(base_url: str, rate: float, addresses: int, stop: asyncio.Event, figures: Figures) -> None:
    """Made-up keys at `rate` per second, spread over the addresses, until `stop`."""
    from keys.keyformat import generate_key

    clients = [
        httpx.AsyncClient(
            base_url=base_url,
            transport=httpx.AsyncHTTPTransport(local_address=f"127.0.{2 + number // 250}.{1 + number % 250}"),
            timeout=60,
        )
        for number in range(addresses)
    ]
    pending: set[asyncio.Task] = set()

    async def one(client: httpx.AsyncClient) -> None:
        try:
            response = await client.get("/v1/models", headers={"x-api-key": generate_key(), "connection": "close"})
            figures.flood_answers[response.status_code] += 1
        except httpx.HTTPError:
            figures.flood_answers[0] += 1  # no answer at all

    started = time.perf_counter()
    while not stop.is_set():
        due = int((time.perf_counter() - started) * rate)
        while figures.flood_sent < due:
            task = asyncio.create_task(one(clients[figures.flood_sent % addresses]))
            pending.add(task)
            task.add_done_callback(pending.discard)
            figures.flood_sent += 1
        await asyncio.sleep(0.005)
    await asyncio.gather(*pending)
    await asyncio.gather(*(client.aclose() for client in clients))


async def measure(base_url: str, keys: list[str], arguments: argparse.Namespace, figures: Figures) -> None:
    half = len(keys) // 2
    figures.quiet_ms = await first_requests(base_url, keys[:half])
    stop = asyncio.Event()
    flooding = asyncio.create_task(flood(base_url, arguments.rate, arguments.addresses, stop, figures))
    await asyncio.sleep(arguments.seconds / 2)  # the flood in full swing, the throttle engaged
    figures.flooded_ms = await first_requests(base_url, keys[half:])
    stop.set()
    await flooding


def report(arguments: argparse.Namespace, figures: Figures) -> str:
    def latency(values: list[float]) -> str:
        return f"{median(values):.1f} ms (p90 {percentile(values, 90):.1f}, max {max(values):.1f})"

    by_status = sorted(figures.flood_answers.items())
    answers = ", ".join(f"{status or 'no answer'}: {count:,}" for status, count in by_status)
    return (
        f"# First request during a flood of made-up keys, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n"
        f"uvicorn, 2 workers, PostgreSQL and Redis on this machine (2 cores, shared: load average "
        f"{os.getloadavg()[0]:.1f}). The flood: {arguments.rate:g} made-up keys a second from "
        f"{arguments.addresses} addresses; each legitimate key's first `GET /v1/models`, one at a time.\n\n"
        "| figure | value |\n|---|---:|\n"
        f"| first request, quiet (median of {len(figures.quiet_ms)}) | {latency(figures.quiet_ms)} |\n"
        f"| first request, during the flood (median of {len(figures.flooded_ms)}) | {latency(figures.flooded_ms)} |\n"
        f"| flood requests sent | {figures.flood_sent:,} |\n"
        f"| flood answers by status | {answers} |\n"
        f"| workers' RSS before the flood | {figures.rss_before / 2**20:.0f} MB |\n"
        f"| workers' RSS after the flood | {figures.rss_after / 2**20:.0f} MB |\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the flood lasts, about")
    parser.add_argument("--rate", type=float, default=200.0, help="made-up keys per second")
    parser.add_argument("--addresses", type=int, default=100, help="client addresses the flood comes from")
    parser.add_argument("--first-requests", type=int, default=20, help="fresh keys measured in each half")
    arguments = parser.parse_args()
    configure_environment()
    raise_open_file_limit()
    recreate_database(os.environ["DATABASE_URL"])
    set_up_django()
    keys = fresh_keys(2 * arguments.first_requests)
    port = free_port()
    gateway = start_gateway(port)
    figures = Figures()
    try:
        figures.rss_before = workers_rss(gateway)
        asyncio.run(measure(f"http://127.0.0.1:{port}", keys, arguments, figures))
        figures.rss_after = workers_rss(gateway)
    finally:
        stop_group(gateway)
        delete_redis_keys(os.environ["REDIS_URL"], os.environ["REDIS_KEY_PREFIX"])
    text = report(arguments, figures)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"auth-flood-{datetime.now(UTC):%Y%m%d-%H%M%S}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
