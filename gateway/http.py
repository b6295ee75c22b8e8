"""The little ASGI plumbing the gateway needs: read a bounded body, send a response.

Request bodies are bounded twice: each by GATEWAY_MAX_BODY_BYTES (413), and all the bodies one
process holds at once by GATEWAY_MAX_INFLIGHT_BODY_BYTES (529, overloaded), so that memory stays
bounded whatever clients send.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from gateway.errors import GatewayError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

TOO_LARGE_MESSAGE = "Request exceeds the maximum allowed number of bytes ({limit})."
OVERLOADED_MESSAGE = "The gateway is receiving too many large requests at once. Please retry shortly."


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
    held_body_bytes: int = 0  # this request's share of the process's in-flight body bytes
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


class InflightBodies:
    """The request-body bytes this process holds, under a ceiling.

    A request takes its share for its declared length before a byte is read (an upload that cannot
    fit is refused at once), and more as chunks beyond it arrive; it gives its share back when the body
    has been sent on (`let_go`) or the request ends.
    """

    def __init__(self) -> None:
        self.held = 0

    def take(self, request: Request, body_size: int) -> None:
        # Joined from its chunks, then parsed, a body briefly costs about twice its size.
        size = 2 * body_size
        extra = size - request.held_body_bytes
        if extra <= 0:
            return
        if self.held + extra > settings.GATEWAY_MAX_INFLIGHT_BODY_BYTES:
            raise GatewayError(529, OVERLOADED_MESSAGE, [(b"retry-after", b"1")])
        self.held += extra
        request.held_body_bytes = size

    def let_go(self, request: Request) -> None:
        self.held -= request.held_body_bytes
        request.held_body_bytes = 0
        request.body = b""


inflight_bodies = InflightBodies()


async def read_body(request: Request, receive: Receive, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it is known to exceed `limit`, and with 529 when
    the process holds too many body bytes already."""
    declared = request.headers.get(b"content-length")
    if declared is not None and declared.isdigit():
        if int(declared) > limit:
            raise GatewayError(413, TOO_LARGE_MESSAGE.format(limit=limit))
        inflight_bodies.take(request, int(declared))
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
        inflight_bodies.take(request, size)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_whole(
    send: Send, status: int, body: bytes, content_type: bytes, headers: Headers = (), *, head_only: bool = False
) -> None:
    """A whole answer, for the small endpoints beside the gateway (probes, metrics); `head_only`
    for HEAD: the length of the body GET would get, and no body."""
    head = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": b"" if head_only else body})
