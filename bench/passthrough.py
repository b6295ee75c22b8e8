"""A bare Python pass-through: the yardstick for the gateway's Claude Code-sized requests.

What any Python proxy in front of the upstream pays and no less: uvicorn (uvloop, httptools) reads
the whole body, parses it with orjson (a gateway must, to route by model), and forwards it with
one pooled aiohttp session, then sends the answer back whole. No keys, limits, routing or usage.
The issue's target for 48 KB requests was set against such a pass-through on another rig, so the
bench measures one here, beside the gateway, in the same turns.

    PASSTHROUGH_UPSTREAM=http://127.0.0.1:PORT uvicorn bench.passthrough:app --workers 2 ...
"""

from __future__ import annotations

import os

import aiohttp
import orjson

UPSTREAM = os.environ.get("PASSTHROUGH_UPSTREAM", "")
_session: aiohttp.ClientSession | None = None


async def app(scope, receive, send) -> None:
    global _session
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _session is not None:
                    await _session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert _session is not None
    body = await read_body(receive)
    if body:
        orjson.loads(body)
    headers = {"content-type": "application/json"}
    async with _session.request(scope["method"], UPSTREAM + scope["path"], data=body or None, headers=headers) as reply:
        answer = await reply.read()
        head = [(b"content-type", reply.headers.get("content-type", "application/json").encode())]
        head.append((b"content-length", str(len(answer)).encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": head})
        await send({"type": "http.response.body", "body": answer})


async def read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
