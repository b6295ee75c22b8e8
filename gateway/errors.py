"""Anthropic-shaped errors: the one place the gateway's own error bodies are made."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass

import orjson

from gateway.wire import error_type_of_status

REQUEST_ID_ALPHABET = (string.ascii_letters + string.digits).encode()
# Random bytes mapped onto base62 in one C call: an id per request must cost next to nothing.
# (256 is not a multiple of 62, so a few characters are slightly likelier: harmless for an id.)
_BYTE_TO_CHARACTER = bytes(REQUEST_ID_ALPHABET[byte % len(REQUEST_ID_ALPHABET)] for byte in range(256))


def new_request_id() -> str:
    """An id in Anthropic's style (`req_` and 24 base62 characters)."""
    return "req_" + secrets.token_bytes(24).translate(_BYTE_TO_CHARACTER).decode()


def error_body(error_type: str, message: str, request_id: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id})


@dataclass(frozen=True, slots=True)
class RelayedError:
    """A backend's error body as the client gets it, and whether the backend wrote it in Anthropic's shape."""

    body: bytes
    anthropic_shaped: bool


NON_JSON_ERROR_MESSAGE_LIMIT = 500


def relayed_error(status: int, body: bytes, request_id: str) -> RelayedError:
    """A backend's error answer in Anthropic's shape, carrying our request id.

    An Anthropic-shaped body keeps its type and message (clients read some messages) and only
    takes our id, so that the body and the `request-id` header agree. Anything else (a proxy's
    text/plain or HTML page) is wrapped, its type chosen by the status.
    """
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, dict) and payload.get("type") == "error" and isinstance(payload.get("error"), dict):
        payload["request_id"] = request_id
        return RelayedError(orjson.dumps(payload), anthropic_shaped=True)
    text = body.decode("utf-8", "replace").strip()[:NON_JSON_ERROR_MESSAGE_LIMIT]
    message = text or f"The backend answered with status {status}."
    return RelayedError(error_body(error_type_of_status(status), message, request_id), anthropic_shaped=False)


def sse_error_event(error_type: str, message: str, request_id: str) -> bytes:
    """A mid-stream failure, as Anthropic sends it: an `error` event in the SSE stream."""
    return b"event: error\ndata: " + error_body(error_type, message, request_id) + b"\n\n"


class GatewayError(Exception):
    """A refusal of the gateway's own, turned into an Anthropic-shaped response by gateway.app."""

    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type_of_status(status)
        self.message = message
        self.headers = headers or []
