"""GET /llmapi/usage: a key's plan, windows and tokens today, asked with the key itself.

Made for a Claude Code status line, which has the key and nothing else. Outside Anthropic's
paths; counted by the guard, as count_tokens is, never against the key's windows. The windows come
from the guard's own decision (the limiter's script reads every window whatever it counts), the
tokens from the counters the usage writer keeps in Redis in its round trip: a warm call makes no
database query. In embedded mode (no Redis) the tokens are read from the rollups.
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.cache import in_database_thread
from gateway.limits import UNREACHABLE, Decision, Window, rfc3339
from gateway.redis_clients import gateway_redis_url
from gateway.redis_keys import key_tokens_key, utc_day
from gateway.side_redis import side_redis
from gateway.usage.record import USAGE_FIELDS
from gateway.usage.selectors import usage_key_totals
from keys.selectors import KeyPrincipal

KEY_USAGE_PATH = "/llmapi/usage"


def key_usage_report(principal: KeyPrincipal, decision: Decision, tokens: dict[str, int] | None) -> dict[str, object]:
    return {
        "type": "key_usage",
        "plan": {"slug": principal.plan_slug, "name": principal.plan_name},
        "windows": _windows(decision) if decision.windows else None,  # None: the limiter was away
        "tokens_today": tokens,  # None: the counters could not be read
        "day": utc_day(),
    }


def _windows(decision: Decision) -> dict[str, dict[str, object]]:
    """The key's windows, or the account's where that has less left, as the headers show them:
    minute, 5h and week, then input_tokens and output_tokens per minute where the plan sets them."""
    windows = (*decision.binding_windows(), *decision.binding_token_windows())
    return {window.name.removeprefix("account-").replace("-", "_"): _window(window) for window in windows}


def _window(window: Window) -> dict[str, object]:
    return {
        "limit": window.limit,
        "used": min(window.used, window.limit),
        "remaining": window.remaining,
        "resets_at": rfc3339(window.reset_at_ms),
    }


async def tokens_today(principal: KeyPrincipal) -> dict[str, int] | None:
    if not gateway_redis_url():
        return await in_database_thread(_tokens_from_rollups)(principal.key_id)
    key = key_tokens_key(user_id=principal.user_id, key_id=principal.key_id, day=utc_day())
    try:
        counts = await side_redis().hgetall(key)
    except UNREACHABLE:
        return None
    return {name: int(counts.get(name.encode(), 0)) for name in USAGE_FIELDS}


def _tokens_from_rollups(key_id: int) -> dict[str, int]:
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    totals = usage_key_totals(api_key_id=key_id, since=midnight)
    return {name: getattr(totals, name) for name in USAGE_FIELDS}
