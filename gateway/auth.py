"""Who is calling: the API key from `x-api-key` or `Authorization: Bearer`, checked and cached."""

from __future__ import annotations

from django.conf import settings

from gateway.cache import TtlCache, in_database_thread
from gateway.errors import GatewayError
from keys import keyformat
from keys.selectors import KeyPrincipal, api_key_principal
from llmapi.invalidation import add_local_listener

# Claude Code recognises this wording for a bad key.
INVALID_KEY_MESSAGE = "invalid x-api-key"
MISSING_KEY_MESSAGE = "x-api-key header is required"

_principals: TtlCache[str, KeyPrincipal | None] = TtlCache(settings.GATEWAY_CACHE_TTL_SECONDS)
_load_principal = in_database_thread(lambda hashed_key: api_key_principal(hashed_key=hashed_key))


def presented_key(headers: dict[bytes, bytes]) -> str | None:
    """The key the client sent. Some clients send both headers; a well-formed one wins."""
    candidates = []
    if api_key := headers.get(b"x-api-key"):
        candidates.append(api_key.decode("latin-1").strip())
    authorization = headers.get(b"authorization", b"")
    if authorization[:7].lower() == b"bearer ":
        candidates.append(authorization[7:].decode("latin-1").strip())
    for candidate in candidates:
        if keyformat.is_well_formed(candidate):
            return candidate
    return candidates[0] if candidates else None


async def authenticate(headers: dict[bytes, bytes]) -> KeyPrincipal:
    key = presented_key(headers)
    if not key:
        raise GatewayError(401, MISSING_KEY_MESSAGE)
    if not keyformat.is_well_formed(key):
        raise GatewayError(401, INVALID_KEY_MESSAGE)
    hashed_key = keyformat.hash_key(key)
    principal = await _principals.get_or_load(hashed_key, lambda: _load_principal(hashed_key))
    if principal is None:
        raise GatewayError(401, INVALID_KEY_MESSAGE)
    if not principal.user_is_active:
        raise GatewayError(403, "This account is disabled. Contact support to restore access.")
    return principal


def _invalidate(topic: str) -> None:
    kind, _, value = topic.partition(":")
    if kind == "key":
        _principals.pop(value)
    elif kind == "user":
        user_id = int(value)
        _principals.pop_where(lambda principal: principal is not None and principal.user_id == user_id)
    elif topic in {"plans", "*"}:
        _principals.clear()


add_local_listener(_invalidate)
