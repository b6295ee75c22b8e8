"""The little ASGI plumbing the gateway needs: read a bounded body, send a response."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import GatewayError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

TOO_LARGE_MESSAGE = "Request exceeds the maximum allowed number of bytes ({limit})."


class ClientDisconnectedError(Exception):
    """The client went away: while sending its request, or while we answered."""


@dataclass(slots=True)
class Request:
    request_id: str
    method: str
    path: str
    query_string: bytes
    raw_headers: Headers  # as received, duplicates kept, names lower-case
    headers: dict[bytes, bytes]  # for lookups
    body: bytes = b""
    client: str = ""  # the client's address as the ASGI server gives it (a trusted proxy may set it)

    @property
    def path_and_query(self) -> str:
        query = self.query_string.decode("latin-1")
        return f"{self.path}?{query}" if query else self.path


def request_from_scope(scope: Scope, request_id: str) -> Request:
    raw_headers = [(name.lower(), value) for name, value in scope["headers"]]
    return Request(
        request_id=request_id,
        method=scope["method"],
        path=scope["path"],
        query_string=scope.get("query_string", b""),
        raw_headers=raw_headers,
        headers=dict(raw_headers),
        client=scope["client"][0] if scope.get("client") else "",
    )


async def read_body(request: Request, receive: Receive, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it is known to exceed `limit`."""
    declared = request.headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise GatewayError(413, TOO_LARGE_MESSAGE.format(limit=limit))
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnectedError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise GatewayError(413, TOO_LARGE_MESSAGE.format(limit=limit))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
