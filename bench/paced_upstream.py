"""A paced streaming upstream: SSE deltas at a fixed interval, for first-byte and long-stream figures.

    uv run python -m bench.paced_upstream --port 8301

`POST /v1/messages?deltas=30&interval_ms=1000` sends message_start and content_block_start at
once, then one content_block_delta every interval (on a fixed schedule, so a late tick does not
push the later ones back), then message_delta (with usage) and message_stop. Without a query it
sends 30 deltas, one a second. It binds to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import time

import uvloop
from aiohttp import web

from bench import bodies
from bench.netutil import HOST, raise_open_file_limit

DEFAULT_DELTAS = 30
DEFAULT_INTERVAL_MS = 1000.0


def query_number(request: web.Request, name: str, default: float) -> float:
    try:
        return float(request.query.get(name, default))
    except ValueError:
        return default


async def paced_stream(request: web.Request) -> web.StreamResponse:
    await request.read()
    deltas = int(query_number(request, "deltas", DEFAULT_DELTAS))
    interval = query_number(request, "interval_ms", DEFAULT_INTERVAL_MS) / 1000
    response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
    await response.prepare(request)
    try:
        await response.write(bodies.stream_head(bodies.PACED_MODEL))
        started = time.monotonic()
        for number in range(deltas):
            await asyncio.sleep(max(0.0, started + (number + 1) * interval - time.monotonic()))
            await response.write(bodies.stream_delta(number))
        await response.write(bodies.stream_tail(deltas))
        await response.write_eof()
    except (ConnectionError, asyncio.CancelledError):
        pass  # the client went away; nothing left to send
    return response


async def count_tokens(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=bodies.COUNT_TOKENS_BODY, content_type="application/json")


def make_app() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/messages", paced_stream)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    return app


async def serve(port: int) -> None:
    runner = web.AppRunner(make_app(), access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, HOST, port, backlog=16384)
    await site.start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    raise_open_file_limit()
    gc.disable()  # no collector pauses in the pacing (see stream_client.py); refcounting frees the rest
    with contextlib.suppress(KeyboardInterrupt, web.GracefulExit):
        uvloop.run(serve(args.port))


if __name__ == "__main__":
    main()
