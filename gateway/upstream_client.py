"""One pooled aiohttp session per process (DESIGN.md rule 6: httpx's own pool is too slow here)."""

from __future__ import annotations

import asyncio

import aiohttp

from gateway.routing import UpstreamInfo

_session: aiohttp.ClientSession | None = None
_session_loop: asyncio.AbstractEventLoop | None = None


def client_session() -> aiohttp.ClientSession:
    global _session, _session_loop
    loop = asyncio.get_running_loop()
    if _session is None or _session.closed or _session_loop is not loop:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
        _session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # we ask for identity; whatever comes is relayed as it is
            skip_auto_headers=("User-Agent",),  # the client's own user-agent is forwarded instead
            timeout=aiohttp.ClientTimeout(total=None),
        )
        _session_loop = loop
    return _session


def upstream_timeout(upstream: UpstreamInfo) -> aiohttp.ClientTimeout:
    """No limit on a whole answer (a stream may last long), only on connecting and on silence."""
    return aiohttp.ClientTimeout(total=None, sock_connect=upstream.connect_timeout, sock_read=upstream.read_timeout)


async def close_client_session() -> None:
    global _session
    if _session is not None and not _session.closed:
        await _session.close()
    _session = None
