"""Anthropic's own Messages API (and anything that speaks it): the request goes out as it came,
and its answer comes back as it is."""

from __future__ import annotations

import aiohttp

from gateway.http import Request
from gateway.routing import Credential, UpstreamInfo
from gateway.upstream_client import client_session, upstream_timeout
from gateway.wire import DEFAULT_ANTHROPIC_VERSION, REQUEST_HEADERS_NOT_FORWARDED

COUNTS_TOKENS = True


async def send(request: Request, upstream: UpstreamInfo, credential: Credential, body: bytes) -> aiohttp.ClientResponse:
    return await client_session().request(
        request.method,
        upstream_url(upstream, request),
        data=body,
        headers=upstream_headers(upstream, credential, request),
        timeout=upstream_timeout(upstream),
        allow_redirects=False,
    )


def upstream_url(upstream: UpstreamInfo, request: Request) -> str:
    return upstream.base_url + request.path_and_query


def upstream_headers(upstream: UpstreamInfo, credential: Credential, request: Request) -> list[tuple[str, str]]:
    """The client's end-to-end headers, betas and versions untouched, with our credential."""
    headers = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in request.raw_headers
        if name not in REQUEST_HEADERS_NOT_FORWARDED
    ]
    if b"anthropic-version" not in request.headers:
        headers.append(("anthropic-version", DEFAULT_ANTHROPIC_VERSION.decode()))
    headers.append(("x-api-key", credential.secret))
    # Plain bytes from the upstream: nothing to decompress on the hot path, nothing held back.
    headers.append(("accept-encoding", "identity"))
    headers.extend(upstream.extra_headers)
    return headers
