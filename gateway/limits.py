"""Plan limits per API key: requests per minute (rolling), per 5 hours and per week (fixed windows).

The minute window is exact and rolling: no more than the limit in any 60 seconds. The 5-hour and
weekly windows open with the first request after the previous one ended and last their full
length, the way Claude subscriptions count, so their reset time is known in advance (see
docs/limits.md). One atomic Lua script decides all three windows of a key and records the request
only where all three admit it: one Redis round trip, exact however many gateway processes share
the Redis. Without Redis, an in-process limiter applies the same rules.

`count_tokens` and `/v1/models` do not use the plan's windows; they get their own guard, a rolling
minute allowing GATEWAY_GUARD_MULTIPLIER times the plan's per-minute limit.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
import redis.asyncio
from django.conf import settings

from gateway.redis_keys import key_window_keys
from keys.selectors import KeyPrincipal

logger = logging.getLogger(__name__)

MINUTE_MS = 60_000
FIVE_HOURS_MS = 5 * 3_600_000
WEEK_MS = 7 * 24 * 3_600_000

Clock = Callable[[], float]  # seconds since the epoch


@dataclass(frozen=True, slots=True)
class Window:
    name: str  # "minute", "5h", "week" or "guard"
    limit: int
    used: int
    reset_at_ms: int  # when the window is whole again
    next_admission_ms: int  # when a request would be admitted (now, unless the window is full)

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    @property
    def is_full(self) -> bool:
        return self.used >= self.limit


@dataclass(frozen=True, slots=True)
class Decision:
    admitted: bool
    windows: tuple[Window, ...]  # minute, 5h, week; empty when the limiter could not be asked
    guard: Window | None = None
    now_ms: int = 0

    def refusing_window(self) -> Window | None:
        """The window that refused, or of several, the one that keeps the client waiting longest."""
        if self.admitted:
            return None
        full = [window for window in (*self.windows, self.guard) if window is not None and window.is_full]
        return max(full, key=lambda window: window.next_admission_ms, default=None)


UNKNOWN = Decision(admitted=True, windows=())


@dataclass(frozen=True, slots=True)
class Counts:
    """What a limiter reads (and, when it admits, writes) for one key, in one step."""

    admitted: bool
    minute_used: int
    minute_oldest_ms: int
    minute_newest_ms: int
    five_hours_used: int
    five_hours_left_ms: int  # negative: no window open
    week_used: int
    week_left_ms: int
    guard_used: int
    guard_oldest_ms: int


def decision_from_counts(counts: Counts, principal: KeyPrincipal, now_ms: int) -> Decision:
    minute = _rolling_window("minute", principal.requests_per_minute, counts.minute_used, counts, now_ms)
    five_hours = _fixed_window(
        "5h",
        principal.requests_per_5_hours,
        counts.five_hours_used,
        counts.five_hours_left_ms,
        FIVE_HOURS_MS,
        now_ms,
    )
    week = _fixed_window("week", principal.requests_per_week, counts.week_used, counts.week_left_ms, WEEK_MS, now_ms)
    guard_limit = guard_limit_for(principal)
    guard = Window(
        "guard",
        guard_limit,
        counts.guard_used,
        reset_at_ms=now_ms + MINUTE_MS,
        next_admission_ms=_first_free_slot(counts.guard_oldest_ms, now_ms)
        if counts.guard_used >= guard_limit
        else now_ms,
    )
    return Decision(counts.admitted, (minute, five_hours, week), guard, now_ms)


def _rolling_window(name: str, limit: int, used: int, counts: Counts, now_ms: int) -> Window:
    return Window(
        name,
        limit,
        used,
        reset_at_ms=counts.minute_newest_ms + MINUTE_MS if used else now_ms,
        next_admission_ms=_first_free_slot(counts.minute_oldest_ms, now_ms) if used >= limit else now_ms,
    )


def _first_free_slot(oldest_ms: int, now_ms: int) -> int:
    # Another process may have recorded the oldest entry with a clock a hair ahead of ours.
    return min(oldest_ms, now_ms) + MINUTE_MS


def _fixed_window(name: str, limit: int, used: int, left_ms: int, length_ms: int, now_ms: int) -> Window:
    reset_at_ms = now_ms + left_ms if left_ms >= 0 else now_ms + length_ms  # a new one opens now
    return Window(name, limit, used, reset_at_ms, next_admission_ms=reset_at_ms if used >= limit else now_ms)


def guard_limit_for(principal: KeyPrincipal) -> int:
    return principal.requests_per_minute * settings.GATEWAY_GUARD_MULTIPLIER


def window_keys(principal: KeyPrincipal) -> list[str]:
    return key_window_keys(user_id=principal.user_id, key_id=principal.key_id)


# KEYS: minute, 5h, week, guard. ARGV: now_ms, mode (admit|guard|peek), member, the three plan
# limits, the guard limit. Returns the fields of Counts, in order.
DECIDE_SCRIPT = """
local now = tonumber(ARGV[1])
local mode = ARGV[2]
local member = ARGV[3]
local minute_limit, five_limit, week_limit, guard_limit =
  tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local MINUTE, FIVE_HOURS, WEEK = 60000, 18000000, 604800000

local function rolling(key)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - MINUTE)
  local used = redis.call('ZCARD', key)
  if used == 0 then return 0, 0, 0 end
  local oldest = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2])
  local newest = tonumber(redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2])
  return used, oldest, newest
end

-- A fixed window is a hash {ends_at, used}; times come from the caller's clock, and the key's
-- expiry only cleans up after it.
local function fixed(key)
  local state = redis.call('HMGET', key, 'ends_at', 'used')
  local ends_at = tonumber(state[1])
  if not ends_at or ends_at <= now then return 0, -1 end
  return tonumber(state[2]), ends_at - now
end

local function count_fixed(key, left, length)
  if left < 0 then
    redis.call('HSET', key, 'ends_at', now + length, 'used', 1)
    redis.call('PEXPIRE', key, length + MINUTE)
    return 1, length
  end
  return redis.call('HINCRBY', key, 'used', 1), left
end

local function record_rolling(key)
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, MINUTE)
end

local minute_used, minute_oldest, minute_newest = rolling(KEYS[1])
local five_used, five_left = fixed(KEYS[2])
local week_used, week_left = fixed(KEYS[3])
local guard_used, guard_oldest = rolling(KEYS[4])
local admitted = 0

if mode == 'admit' then
  if minute_used < minute_limit and five_used < five_limit and week_used < week_limit then
    admitted = 1
    record_rolling(KEYS[1])
    if minute_used == 0 then minute_oldest = now end
    minute_used, minute_newest = minute_used + 1, now
    five_used, five_left = count_fixed(KEYS[2], five_left, FIVE_HOURS)
    week_used, week_left = count_fixed(KEYS[3], week_left, WEEK)
  end
elseif mode == 'guard' then
  if guard_used < guard_limit then
    admitted = 1
    record_rolling(KEYS[4])
    if guard_used == 0 then guard_oldest = now end
    guard_used = guard_used + 1
  end
else
  admitted = 1
end

return {admitted, minute_used, minute_oldest, minute_newest, five_used, five_left,
        week_used, week_left, guard_used, guard_oldest}
"""

# KEYS: minute, 5h, week. ARGV: member. Gives back an admitted request, once.
GIVE_BACK_SCRIPT = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  for i = 2, 3 do
    if tonumber(redis.call('HGET', KEYS[i], 'used') or '0') > 0 then
      redis.call('HINCRBY', KEYS[i], 'used', -1)
    end
  end
end
return 0
"""


def _script_arguments(principal: KeyPrincipal, mode: str, member: str, now_ms: int) -> list[object]:
    return [
        now_ms,
        mode,
        member,
        principal.requests_per_minute,
        principal.requests_per_5_hours,
        principal.requests_per_week,
        guard_limit_for(principal),
    ]


def _counts(raw: list[int]) -> Counts:
    return Counts(bool(raw[0]), *(int(value) for value in raw[1:]))


class RedisLimiter:
    """The limiter of production: one script call per decision, on a shared Redis."""

    def __init__(self, url: str, clock: Clock = time.time) -> None:
        timeout = settings.GATEWAY_LIMITER_TIMEOUT_SECONDS
        self._client = redis.asyncio.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._decide = self._client.register_script(DECIDE_SCRIPT)
        self._give_back = self._client.register_script(GIVE_BACK_SCRIPT)
        self._clock = clock

    async def decide(self, principal: KeyPrincipal, mode: str, member: str) -> Decision:
        now_ms = int(self._clock() * 1000)
        raw = await self._decide(keys=window_keys(principal), args=_script_arguments(principal, mode, member, now_ms))
        return decision_from_counts(_counts(raw), principal, now_ms)

    async def give_back(self, principal: KeyPrincipal, member: str) -> None:
        await self._give_back(keys=window_keys(principal)[:3], args=[member])

    async def close(self) -> None:
        await self._client.aclose()


def read_windows_from_redis(url: str, principal: KeyPrincipal, clock: Clock = time.time) -> Decision:
    """The windows of a key, read without counting anything (for the dashboard)."""
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        now_ms = int(clock() * 1000)
        raw = client.register_script(DECIDE_SCRIPT)(
            keys=window_keys(principal), args=_script_arguments(principal, "peek", "", now_ms)
        )
        return decision_from_counts(_counts(raw), principal, now_ms)
    except redis.RedisError:
        return UNKNOWN
    finally:
        client.close()


class InProcessLimiter:
    """The embedded limiter: the same rules as the script, for one process without Redis."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._rolling: dict[tuple[int, str], deque[tuple[int, str]]] = {}
        self._fixed: dict[tuple[int, str], tuple[int, int]] = {}  # (key, window) -> (ends at, used)

    async def decide(self, principal: KeyPrincipal, mode: str, member: str) -> Decision:
        return self.decide_now(principal, mode, member)

    def decide_now(self, principal: KeyPrincipal, mode: str, member: str) -> Decision:
        now_ms = int(self._clock() * 1000)
        key_id = principal.key_id
        minute = self._trimmed(key_id, "minute", now_ms)
        guard = self._trimmed(key_id, "guard", now_ms)
        five_used, five_left = self._fixed_state(key_id, "5h", now_ms)
        week_used, week_left = self._fixed_state(key_id, "week", now_ms)
        admitted = True
        if mode == "admit":
            admitted = (
                len(minute) < principal.requests_per_minute
                and five_used < principal.requests_per_5_hours
                and week_used < principal.requests_per_week
            )
            if admitted:
                minute.append((now_ms, member))
                five_used, five_left = self._count_fixed(key_id, "5h", five_left, FIVE_HOURS_MS, now_ms)
                week_used, week_left = self._count_fixed(key_id, "week", week_left, WEEK_MS, now_ms)
        elif mode == "guard":
            admitted = len(guard) < guard_limit_for(principal)
            if admitted:
                guard.append((now_ms, member))
        counts = Counts(
            admitted,
            len(minute),
            minute[0][0] if minute else 0,
            minute[-1][0] if minute else 0,
            five_used,
            five_left,
            week_used,
            week_left,
            len(guard),
            guard[0][0] if guard else 0,
        )
        return decision_from_counts(counts, principal, now_ms)

    async def give_back(self, principal: KeyPrincipal, member: str) -> None:
        minute = self._rolling.get((principal.key_id, "minute"), deque())
        for entry in minute:
            if entry[1] == member:
                minute.remove(entry)
                for window in ("5h", "week"):
                    ends_at, used = self._fixed.get((principal.key_id, window), (0, 0))
                    if used > 0:
                        self._fixed[(principal.key_id, window)] = (ends_at, used - 1)
                return

    async def close(self) -> None:
        return None

    def _trimmed(self, key_id: int, window: str, now_ms: int) -> deque[tuple[int, str]]:
        entries = self._rolling.setdefault((key_id, window), deque())
        while entries and entries[0][0] <= now_ms - MINUTE_MS:
            entries.popleft()
        return entries

    def _fixed_state(self, key_id: int, window: str, now_ms: int) -> tuple[int, int]:
        ends_at, used = self._fixed.get((key_id, window), (0, 0))
        return (used, ends_at - now_ms) if ends_at > now_ms else (0, -1)

    def _count_fixed(self, key_id: int, window: str, left_ms: int, length_ms: int, now_ms: int) -> tuple[int, int]:
        if left_ms < 0:
            self._fixed[(key_id, window)] = (now_ms + length_ms, 1)
            return 1, length_ms
        ends_at, used = self._fixed[(key_id, window)]
        self._fixed[(key_id, window)] = (ends_at, used + 1)
        return used + 1, left_ms


class FailOpenLimiter:
    """Keeps serving when Redis blinks: an unanswered decision admits the request.

    After a failure Redis is left alone for a second, so that an outage costs requests no
    timeouts; the failure is logged at most once per GATEWAY_LIMITER_LOG_INTERVAL_SECONDS and
    counted in `failures` (a metric).
    """

    def __init__(self, inner: RedisLimiter) -> None:
        self.inner = inner
        self.failures = 0
        self._skip_until = 0.0
        self._last_logged = float("-inf")

    async def decide(self, principal: KeyPrincipal, mode: str, member: str) -> Decision:
        if time.monotonic() < self._skip_until:
            self.failures += 1
            return UNKNOWN
        try:
            return await self.inner.decide(principal, mode, member)
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return UNKNOWN

    async def give_back(self, principal: KeyPrincipal, member: str) -> None:
        try:
            await self.inner.give_back(principal, member)
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)

    async def close(self) -> None:
        await self.inner.close()

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        now = time.monotonic()
        self._skip_until = now + 1.0
        if now - self._last_logged >= settings.GATEWAY_LIMITER_LOG_INTERVAL_SECONDS:
            self._last_logged = now
            logger.warning("rate limiter unavailable, admitting requests unchecked (%d so far): %r", self.failures, exc)


Limiter = InProcessLimiter | FailOpenLimiter
_limiter: Limiter | None = None


def limiter() -> Limiter:
    """This process's limiter: Redis-backed when REDIS_URL is set, in-process otherwise."""
    global _limiter  # one per process
    if _limiter is None:
        _limiter = FailOpenLimiter(RedisLimiter(settings.REDIS_URL)) if settings.REDIS_URL else InProcessLimiter()
    return _limiter


async def close_limiter() -> None:
    global _limiter
    if _limiter is not None:
        await _limiter.close()
    _limiter = None


def read_windows(principal: KeyPrincipal) -> Decision:
    """The current windows of a key, for pages: nothing is counted."""
    if settings.REDIS_URL:
        return read_windows_from_redis(settings.REDIS_URL, principal)
    current = limiter()
    return current.decide_now(principal, "peek", "") if isinstance(current, InProcessLimiter) else UNKNOWN


def rfc3339(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
