"""Anthropic-shaped errors: the one place the gateway's own error bodies are made."""

from __future__ import annotations

import secrets
import string

import orjson

REQUEST_ID_ALPHABET = string.ascii_letters + string.digits


def new_request_id() -> str:
    """An id in Anthropic's style (`req_` and 24 base62 characters)."""
    return "req_" + "".join(secrets.choice(REQUEST_ID_ALPHABET) for _ in range(24))


def error_body(error_type: str, message: str, request_id: str) -> bytes:
    return orjson.dumps(
        {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}
    )
