"""A backend's answer as the relay reads an Anthropic one (gateway/providers/__init__.py).

For the kinds whose answers are Anthropic's messages and events, but whose envelope is not: the
status is Anthropic's (the adapter says which), the headers the client may see are only the
content type and `retry-after`, and an error body the backend wrote its own way becomes Anthropic's
`{"type": "error", ...}` with the message the backend gave.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from aiohttp import ClientResponse
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.errors import error_body
from gateway.providers import Content
from gateway.wire import error_type_of_status


class TranslatedResponse:
    """`answer` turns a successful body into Anthropic's, where the backend's differs."""

    def __init__(
        self,
        response: ClientResponse,
        *,
        status: int,
        streams: bool,
        content: Content,
        request_id: str,
        answer: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self._response = response
        self._request_id = request_id
        self._answer = answer
        self.status = status
        headers = CIMultiDict({"content-type": "text/event-stream" if streams else "application/json"})
        if retry_after := response.headers.get("retry-after"):
            headers["retry-after"] = retry_after
        self.headers = CIMultiDictProxy(headers)
        self.raw_headers = tuple((name.encode(), value.encode()) for name, value in headers.items())
        self.content = content

    async def read(self) -> bytes:
        body = await self._response.read()
        if self.status >= 400:
            return anthropic_error_body(self.status, body, self._request_id)
        return self._answer(body) if self._answer is not None else body

    def release(self) -> None:
        self._response.release()

    def close(self) -> None:
        self._response.close()


def anthropic_error_body(status: int, body: bytes, request_id: str) -> bytes:
    """An error body in Anthropic's shape: as it is when the backend wrote it so (Vertex passes the
    model's own errors through), else made of the message the backend gave (Bedrock's
    `{"message"}`, Google's `{"error": {"message"}}`) or its text."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, dict) and payload.get("type") == "error":
        return body
    return error_body(error_type_of_status(status), backend_error_message(payload, body), request_id)


def backend_error_message(payload: object, body: bytes) -> str:
    if isinstance(payload, dict):
        inner = payload.get("error")
        message = inner.get("message") if isinstance(inner, dict) else payload.get("message") or payload.get("Message")
        if isinstance(message, str) and message:
            return message
    return body.decode("utf-8", "replace").strip()[:500] or "The backend gave no reason."
