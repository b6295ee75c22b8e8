"""Adapters: how a request is put to each kind of backend, and its answer made Anthropic's.

Each kind is a module with the same small interface:

- `send(request, upstream, credential, body)` puts the request (the Anthropic body the
  client sent, its model already the backend's name for it) to the backend, with the backend's
  URL, authentication and body, and returns the answer as an `UpstreamResponse`: Anthropic's JSON
  or SSE, Anthropic's statuses and error shapes. The relay (gateway/relay.py, gateway/app.py)
  reads usage, fails over and relays from that alone.
- `COUNTS_TOKENS`: whether the backend answers /v1/messages/count_tokens (else the gateway
  estimates).

Anthropic's own API (providers/anthropic.py) answers in that shape already: its aiohttp response
is returned as it is, byte for byte. Other kinds wrap theirs (providers/translated.py):
providers/bedrock.py, providers/vertex.py.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Mapping
from types import ModuleType
from typing import Protocol

from gateway.http import Request
from gateway.routing import Credential, UpstreamInfo


class CredentialUnusable(Exception):  # noqa: N818 - a state, not a failure of the code
    """The credential could not be turned into what the backend takes (a token Google would not
    give for a service account key, say): that credential rests, its backend stays in service."""


class Content(Protocol):
    def iter_any(self) -> AsyncIterator[bytes]: ...

    def at_eof(self) -> bool: ...


class UpstreamResponse(Protocol):
    """What the relay uses of an answer: the part of aiohttp.ClientResponse it touches."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def raw_headers(self) -> tuple[tuple[bytes, bytes], ...]: ...

    @property
    def content(self) -> Content: ...

    async def read(self) -> bytes: ...

    def release(self) -> None: ...

    def close(self) -> None: ...


class Adapter(Protocol):
    COUNTS_TOKENS: bool

    async def send(
        self,
        request: Request,
        upstream: UpstreamInfo,
        credential: Credential,
        body: bytes,
    ) -> UpstreamResponse: ...


ADAPTER_MODULES = {
    "anthropic": "gateway.providers.anthropic",
    "bedrock": "gateway.providers.bedrock",
    "vertex": "gateway.providers.vertex",
}
_adapters: dict[str, Adapter | ModuleType] = {}


def adapter_for(kind: str) -> Adapter | ModuleType:
    """The adapter of a kind of backend, imported on first use: Bedrock's and Vertex's bring
    botocore and google-auth (some 7 MB per process), which a deployment without them never loads.
    The route table asks for its kinds' adapters as it loads, on its thread (gateway/routing.py),
    so that no request waits for an import."""
    adapter = _adapters.get(kind)
    if adapter is None:
        adapter = _adapters[kind] = importlib.import_module(ADAPTER_MODULES[kind])
    return adapter
