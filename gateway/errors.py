"""Anthropic-shaped errors: the one place the gateway's own error bodies are made."""

from __future__ import annotations

import secrets
import string

import orjson

from gateway.wire import ERROR_TYPE_OF_STATUS

REQUEST_ID_ALPHABET = (string.ascii_letters + string.digits).encode()
# Random bytes mapped onto base62 in one C call: an id per request must cost next to nothing.
# (256 is not a multiple of 62, so a few characters are slightly likelier: harmless for an id.)
_BYTE_TO_CHARACTER = bytes(REQUEST_ID_ALPHABET[byte % len(REQUEST_ID_ALPHABET)] for byte in range(256))


def new_request_id() -> str:
    """An id in Anthropic's style (`req_` and 24 base62 characters)."""
    return "req_" + secrets.token_bytes(24).translate(_BYTE_TO_CHARACTER).decode()


def error_body(error_type: str, message: str, request_id: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id})


def sse_error_event(error_type: str, message: str, request_id: str) -> bytes:
    """A mid-stream failure, as Anthropic sends it: an `error` event in the SSE stream."""
    return b"event: error\ndata: " + error_body(error_type, message, request_id) + b"\n\n"


class GatewayError(Exception):
    """A refusal of the gateway's own, turned into an Anthropic-shaped response by gateway.app."""

    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = ERROR_TYPE_OF_STATUS.get(status, "api_error")
        self.message = message
        self.headers = headers or []
