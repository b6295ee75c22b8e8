"""The bench's async client for streams (aiohttp on uvloop), run as its own process.

    python -m bench.stream_client ttfb --url URL --key KEY --count 200
    python -m bench.stream_client streams --url URL --key KEY --streams 1000 --deltas 30 --interval-ms 1000

`ttfb`: one stream at a time; the time from sending the request to the first byte of the body.
`streams`: opens streams at a steady rate and holds them all; counts those that ran to
message_stop with every delta, the most open at once, and for each stream the worst gap
between two deltas as they arrived. Prints one JSON object of figures on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import orjson
import uvloop

from bench import bodies
from bench.netutil import raise_open_file_limit
from bench.stats import percentile

DELTA_MARK = b"event: content_block_delta"
STOP_MARK = b"event: message_stop"


def stream_url(base_url: str, deltas: int, interval_ms: float) -> str:
    return f"{base_url}/v1/messages?deltas={deltas}&interval_ms={interval_ms:g}"


def headers_for(key: str) -> dict[str, str]:
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    if key:
        headers["x-api-key"] = key
    return headers


def new_session(limit: int = 0) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, force_close=False, keepalive_timeout=120)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))


# --------------------------------------------------------------------------- time to first byte


async def first_byte_ms(session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes) -> float:
    started = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as response:
        first = await response.content.readany()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200 or not first:
            raise RuntimeError(f"status {response.status}, first chunk {first[:200]!r}")
        await response.read()  # the rest, so that the connection is reused
    return elapsed


async def measure_ttfb(base_url: str, key: str, count: int, warmup: int) -> dict[str, object]:
    url = stream_url(base_url, deltas=3, interval_ms=2)
    body = bodies.request_body(bodies.PACED_MODEL, stream=True)
    headers = headers_for(key)
    samples: list[float] = []
    async with new_session(limit=1) as session:
        for number in range(warmup + count):
            elapsed = await first_byte_ms(session, url, headers, body)
            if number >= warmup:
                samples.append(elapsed)
    return {
        "count": len(samples),
        "p50_ms": percentile(samples, 50),
        "p90_ms": percentile(samples, 90),
        "p99_ms": percentile(samples, 99),
    }


# --------------------------------------------------------------------------- many open streams


@dataclass
class StreamTally:
    expected_deltas: int
    open_now: int = 0
    peak_open: int = 0
    completed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    worst_gaps_ms: list[float] = field(default_factory=list)

    def opened(self) -> None:
        self.open_now += 1
        self.peak_open = max(self.peak_open, self.open_now)


async def hold_stream(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes, tally: StreamTally
) -> None:
    deltas, stopped, worst_gap, last_delta = 0, False, 0.0, None
    try:
        async with session.post(url, data=body, headers=headers) as response:
            if response.status != 200:
                tally.errors[f"status {response.status}"] += 1
                return
            tally.opened()
            try:
                async for chunk in response.content.iter_any():
                    now = time.perf_counter()
                    count = chunk.count(DELTA_MARK)
                    if count:
                        if last_delta is not None:
                            worst_gap = max(worst_gap, now - last_delta)
                        last_delta, deltas = now, deltas + count
                    stopped = stopped or STOP_MARK in chunk
            finally:
                tally.open_now -= 1
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        tally.errors[type(exc).__name__] += 1
        return
    if not stopped or deltas != tally.expected_deltas:
        tally.errors["incomplete stream"] += 1
        return
    tally.completed += 1
    tally.worst_gaps_ms.append(worst_gap * 1000)


async def measure_streams(
    base_url: str, keys: list[str], streams: int, deltas: int, interval_ms: float, rate: float
) -> dict[str, object]:
    """Open `streams` streams at `rate` a second and hold every one to its end."""
    url = stream_url(base_url, deltas, interval_ms)
    body = bodies.request_body(bodies.PACED_MODEL, stream=True)
    tally = StreamTally(expected_deltas=deltas)
    started = time.monotonic()
    async with new_session() as session:
        tasks = []
        for number in range(streams):
            await asyncio.sleep(max(0.0, started + number / rate - time.monotonic()))
            headers = headers_for(keys[number % len(keys)] if keys else "")
            tasks.append(asyncio.create_task(hold_stream(session, url, headers, body, tally)))
        ramp_seconds = time.monotonic() - started
        await asyncio.gather(*tasks)
    gaps = tally.worst_gaps_ms
    return {
        "streams": streams,
        "completed": tally.completed,
        "errors": sum(tally.errors.values()),
        "error_kinds": dict(tally.errors),
        "peak_open": tally.peak_open,
        "ramp_seconds": ramp_seconds,
        "seconds": time.monotonic() - started,
        "worst_gap_p50_ms": percentile(gaps, 50),
        "worst_gap_p99_ms": percentile(gaps, 99),
        "worst_gap_max_ms": max(gaps, default=float("nan")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["ttfb", "streams"])
    parser.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--key", action="append", default=[], help="API key; repeat to rotate")
    parser.add_argument("--count", type=int, default=200, help="ttfb: requests measured")
    parser.add_argument("--warmup", type=int, default=20, help="ttfb: requests not measured")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--deltas", type=int, default=30)
    parser.add_argument("--interval-ms", type=float, default=1000.0)
    parser.add_argument("--rate", type=float, default=500.0, help="streams opened per second")
    args = parser.parse_args()
    raise_open_file_limit()
    # The cyclic collector walks every object of 10,000 streams now and then, stalling them all
    # for ~0.3 s: the client would measure its own pauses. Reference counting frees the rest.
    gc.disable()
    if args.mode == "ttfb":
        key = args.key[0] if args.key else ""
        result = uvloop.run(measure_ttfb(args.url, key, args.count, args.warmup))
    else:
        result = uvloop.run(measure_streams(args.url, args.key, args.streams, args.deltas, args.interval_ms, args.rate))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
