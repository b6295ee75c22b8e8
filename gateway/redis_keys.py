"""Every Redis key the gateway writes, named in one place.

All the keys one limiter decision touches (a key's windows, its account's windows, the usage
stream the admission is written ahead to) carry the same hash tag, the account's shard, so that
one Lua script can change them together on a Redis Cluster, where a script may touch one slot
only. REDIS_SHARDS spreads accounts over that many slots (and usage streams); 1 suits a single
Redis. Set it before the first start: changing it moves every window and stream to new keys.
"""

from __future__ import annotations

import time

from django.conf import settings


def shard_for_user(user_id: int) -> int:
    return user_id % settings.REDIS_SHARDS


def all_shards() -> range:
    return range(settings.REDIS_SHARDS)


def _tagged(shard: int) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:{{{shard}}}"


def key_window_keys(*, user_id: int, key_id: int) -> list[str]:
    """The rate-limit windows of one API key: minute, 5 hours, week, and the guard."""
    base = f"{_tagged(shard_for_user(user_id))}:rl:k{key_id}"
    return [f"{base}:minute", f"{base}:5h", f"{base}:week", f"{base}:guard"]


def account_window_prefix(*, user_id: int) -> str:
    """Where an account's own windows live, beside its keys' windows (same slot)."""
    return f"{_tagged(shard_for_user(user_id))}:rl:u{user_id}"


def account_window_keys(*, user_id: int) -> list[str]:
    """The account's ceiling windows (max_keys times each plan limit): minute, 5 hours, week."""
    base = account_window_prefix(user_id=user_id)
    return [f"{base}:minute", f"{base}:5h", f"{base}:week"]


def key_token_window_key(*, user_id: int, key_id: int) -> str:
    """A key's input and output token levels (a bucket each, draining at the plan's rate)."""
    return f"{_tagged(shard_for_user(user_id))}:rl:k{key_id}:tokens"


def account_token_window_key(*, user_id: int) -> str:
    """The account's token levels, under max_keys times the plan's token limits."""
    return f"{account_window_prefix(user_id=user_id)}:tokens"


def key_concurrency_key(*, user_id: int, key_id: int) -> str:
    """The requests a key has in flight: request id -> when its lease runs out."""
    return f"{_tagged(shard_for_user(user_id))}:rl:k{key_id}:inflight"


def usage_stream_key(shard: int) -> str:
    return f"{_tagged(shard)}:usage"


def utc_day(at: float | None = None) -> str:
    """The UTC day (YYYY-MM-DD) of a moment in seconds since the epoch, now by default."""
    return time.strftime("%Y-%m-%d", time.gmtime(at))


def key_tokens_key(*, user_id: int, key_id: int, day: str) -> str:
    """A key's token counts on one UTC day (`utc_day`): input, output, cache writes and reads."""
    return f"{_tagged(shard_for_user(user_id))}:tok:k{key_id}:{day}"
