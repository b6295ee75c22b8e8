"""Plan limits per API key, under an account ceiling, and requests in flight per key.

Each key has a rolling minute window and fixed 5-hour and weekly windows (see docs/limits.md),
and, where its plan sets them, input and output tokens per minute (a bucket each that drains at
the limit per minute; input estimated at admission, corrected once the answer's usage is known).
Its account has the same windows, allowing the plan's `max_keys` times each limit, so that
revoking and re-creating keys cannot reset what an account may use. Each key may have the plan's
`concurrent_requests_per_key` requests in flight, each holding a slot with a lease. One atomic
Lua script decides all of these and records the request only where all admit it: exact however
many gateway processes share the Redis. Decisions made in the same turn of the event loop travel
together as one pipeline over a few connections, so no burst can exhaust a connection pool. Without
Redis, an in-process limiter applies the same rules.

`count_tokens` and `/v1/models` do not use the plan's windows; they get their own guard, a rolling
minute allowing GATEWAY_GUARD_MULTIPLIER times the plan's per-minute limit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import redis
import redis.asyncio
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from gateway.redis_clients import Address, gateway_redis_url, is_cluster, node_urls, sync_gateway_redis
from gateway.redis_keys import (
    account_token_window_key,
    account_window_keys,
    key_concurrency_key,
    key_token_window_key,
    key_window_keys,
    shard_for_user,
    usage_stream_key,
)
from gateway.slot_owners import SlotOwners
from gateway.usage.record import AdmissionStart
from keys.selectors import KeyPrincipal

logger = logging.getLogger(__name__)

MINUTE_MS = 60_000
FIVE_HOURS_MS = 5 * 3_600_000
WEEK_MS = 7 * 24 * 3_600_000
CONCURRENCY_RETRY_MS = 1_000  # nobody knows when a request in flight ends; a second is a fair guess
ENDED_KEYS_KEPT = 10_000  # keys whose ended requests a process remembers until their next decision
NO_LIMIT = -1  # a token limit the plan does not set, as the script receives it

Clock = Callable[[], float]  # seconds since the epoch

# What a process cannot tell from a Redis that is away: the request is admitted unchecked. A cluster
# client's own errors (no node reachable to learn the slots from) are not RedisErrors.
UNREACHABLE = (redis.RedisError, redis.exceptions.RedisClusterException, OSError, asyncio.TimeoutError)


# The value objects of one decision (a dozen windows each) are plain slotted dataclasses, not
# frozen ones: a frozen dataclass sets each field through object.__setattr__, four times the cost,
# on every request. Nothing changes them once made.
@dataclass(slots=True)
class Window:
    name: str  # "minute", "5h", "week", "input-tokens", "output-tokens"; "account-" + those; "guard"; "concurrent"
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


@dataclass(slots=True)
class Decision:
    admitted: bool
    windows: tuple[Window, ...]  # the key's minute, 5h, week; empty when the limiter could not be asked
    guard: Window | None = None
    now_ms: int = 0
    account_windows: tuple[Window, ...] = ()  # the account's minute, 5h, week
    concurrent: Window | None = None
    admission_entry: str = ""  # the usage stream entry written ahead for this admission, if any
    tokens: tuple[Window, ...] = ()  # the key's input and output tokens, those the plan limits
    account_tokens: tuple[Window, ...] = ()  # the account's, the same ones

    def refusing_window(self) -> Window | None:
        """The window that refused, or of several, the one that keeps the client waiting longest."""
        if self.admitted:
            return None
        candidates = (
            *self.windows,
            *self.account_windows,
            *self.tokens,
            *self.account_tokens,
            self.guard,
            self.concurrent,
        )
        full = [window for window in candidates if window is not None and window.is_full]
        return max(full, key=lambda window: window.next_admission_ms, default=None)

    def binding_windows(self) -> tuple[Window, ...]:
        """For each of minute, 5h and week, the key's or the account's window, whichever has less left:
        what the client can really count on."""
        return _less_left(self.windows, self.account_windows)

    def binding_token_windows(self) -> tuple[Window, ...]:
        """The same for the token windows the plan sets (input, output)."""
        return _less_left(self.tokens, self.account_tokens)


def _less_left(own: tuple[Window, ...], account: tuple[Window, ...]) -> tuple[Window, ...]:
    if not account:
        return own
    return tuple(
        theirs if theirs.remaining < mine.remaining else mine for mine, theirs in zip(own, account, strict=True)
    )


UNKNOWN = Decision(admitted=True, windows=())


@dataclass(slots=True)
class Counts:
    """What a limiter reads (and, when it admits, writes) for one key and its account, in one step."""

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
    account_minute_used: int
    account_minute_oldest_ms: int
    account_minute_newest_ms: int
    account_five_hours_used: int
    account_five_hours_left_ms: int
    account_week_used: int
    account_week_left_ms: int
    in_flight: int
    input_tokens: int  # the key's token levels (0 where the plan sets no limit)
    output_tokens: int
    account_input_tokens: int
    account_output_tokens: int


@dataclass(slots=True)
class Limits:
    """The numbers one decision is made against, from the key's principal."""

    minute: int
    five_hours: int
    week: int
    guard: int
    account_minute: int
    account_five_hours: int
    account_week: int
    in_flight: int
    input_tokens: int  # NO_LIMIT where the plan sets none
    output_tokens: int
    account_input_tokens: int
    account_output_tokens: int

    @classmethod
    def of(cls, principal: KeyPrincipal) -> Limits:
        keys = principal.max_keys
        input_tokens = _or_no_limit(principal.input_tokens_per_minute)
        output_tokens = _or_no_limit(principal.output_tokens_per_minute)
        return cls(
            minute=principal.requests_per_minute,
            five_hours=principal.requests_per_5_hours,
            week=principal.requests_per_week,
            guard=guard_limit_for(principal),
            account_minute=keys * principal.requests_per_minute,
            account_five_hours=keys * principal.requests_per_5_hours,
            account_week=keys * principal.requests_per_week,
            in_flight=principal.concurrent_requests_per_key,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            account_input_tokens=_times(keys, input_tokens),
            account_output_tokens=_times(keys, output_tokens),
        )

    @property
    def token_limits(self) -> tuple[tuple[str, int, int], ...]:
        """(name, the key's limit, the account's) of each token window the plan sets."""
        both = (
            ("input-tokens", self.input_tokens, self.account_input_tokens),
            ("output-tokens", self.output_tokens, self.account_output_tokens),
        )
        return tuple(window for window in both if window[1] != NO_LIMIT)


def _or_no_limit(limit: int | None) -> int:
    return NO_LIMIT if limit is None else limit


def _times(keys: int, limit: int) -> int:
    return NO_LIMIT if limit == NO_LIMIT else keys * limit


def decision_from_counts(counts: Counts, principal: KeyPrincipal, now_ms: int, admission_entry: str = "") -> Decision:
    limits = limits_for(principal)
    own = (
        _rolling_window(
            "minute", limits.minute, counts.minute_used, counts.minute_oldest_ms, counts.minute_newest_ms, now_ms
        ),
        _fixed_window(
            "5h", limits.five_hours, counts.five_hours_used, counts.five_hours_left_ms, FIVE_HOURS_MS, now_ms
        ),
        _fixed_window("week", limits.week, counts.week_used, counts.week_left_ms, WEEK_MS, now_ms),
    )
    account = (
        _rolling_window(
            "account-minute",
            limits.account_minute,
            counts.account_minute_used,
            counts.account_minute_oldest_ms,
            counts.account_minute_newest_ms,
            now_ms,
        ),
        _fixed_window(
            "account-5h",
            limits.account_five_hours,
            counts.account_five_hours_used,
            counts.account_five_hours_left_ms,
            FIVE_HOURS_MS,
            now_ms,
        ),
        _fixed_window(
            "account-week", limits.account_week, counts.account_week_used, counts.account_week_left_ms, WEEK_MS, now_ms
        ),
    )
    guard = _rolling_window("guard", limits.guard, counts.guard_used, counts.guard_oldest_ms, now_ms, now_ms)
    concurrent = Window(
        "concurrent",
        limits.in_flight,
        counts.in_flight,
        reset_at_ms=now_ms,
        next_admission_ms=now_ms + CONCURRENCY_RETRY_MS if counts.in_flight >= limits.in_flight else now_ms,
    )
    levels = {
        "input-tokens": (counts.input_tokens, counts.account_input_tokens),
        "output-tokens": (counts.output_tokens, counts.account_output_tokens),
    }
    tokens = tuple(_token_window(name, limit, levels[name][0], now_ms) for name, limit, _ in limits.token_limits)
    account_tokens = tuple(
        _token_window("account-" + name, limit, levels[name][1], now_ms) for name, _, limit in limits.token_limits
    )
    return Decision(counts.admitted, own, guard, now_ms, account, concurrent, admission_entry, tokens, account_tokens)


def _token_window(name: str, limit: int, level: int, now_ms: int) -> Window:
    """A token bucket as a window: `level` tokens in it, draining at `limit` a minute. It admits
    while the level is under the limit, and is whole again once drained."""
    drain_ms = level * MINUTE_MS / limit
    over_ms = (level - limit) * MINUTE_MS / limit
    return Window(
        name,
        limit,
        level,
        reset_at_ms=now_ms + math.ceil(drain_ms),
        next_admission_ms=now_ms + math.floor(over_ms) + 1 if level >= limit else now_ms,
    )


def _rolling_window(name: str, limit: int, used: int, oldest_ms: int, newest_ms: int, now_ms: int) -> Window:
    return Window(
        name,
        limit,
        used,
        reset_at_ms=newest_ms + MINUTE_MS if used else now_ms,
        next_admission_ms=_first_free_slot(oldest_ms, now_ms) if used >= limit else now_ms,
    )


def _first_free_slot(oldest_ms: int, now_ms: int) -> int:
    # Another process may have recorded the oldest entry with a clock a hair ahead of ours.
    return min(oldest_ms, now_ms) + MINUTE_MS


def _fixed_window(name: str, limit: int, used: int, left_ms: int, length_ms: int, now_ms: int) -> Window:
    reset_at_ms = now_ms + left_ms if left_ms >= 0 else now_ms + length_ms  # a new one opens now
    return Window(name, limit, used, reset_at_ms, next_admission_ms=reset_at_ms if used >= limit else now_ms)


def guard_limit_for(principal: KeyPrincipal) -> int:
    return principal.requests_per_minute * settings.GATEWAY_GUARD_MULTIPLIER


@dataclass(slots=True)
class PrincipalShared:
    """What every decision of one principal shares, made once (callers only read it)."""

    limits: Limits
    keys: tuple[bytes, ...]  # every key a decision touches, encoded as redis-py would on every call
    fixed_arguments: bytes  # the numbers sent with each call, as one argument (see DECIDE_SCRIPT)


# A principal is cached, unchanged, until its key or plan changes, so what its decisions share is
# made once per principal, not once per call: formatting eleven keys and packing a dozen integers
# for Redis cost about as much as deciding what to ask.
PRINCIPALS_REMEMBERED = 10_000
# The settings that go into it: a change of one (tests change them) forgets every principal's.
SETTINGS_SHARED = frozenset(
    {
        "REDIS_KEY_PREFIX",
        "REDIS_SHARDS",
        "GATEWAY_GUARD_MULTIPLIER",
        "GATEWAY_CONCURRENCY_LEASE_SECONDS",
        "USAGE_STREAM_MAX_LENGTH",
    }
)


@functools.lru_cache(maxsize=PRINCIPALS_REMEMBERED)
def shared_by(principal: KeyPrincipal) -> PrincipalShared:
    limits = Limits.of(principal)
    names = (
        *key_window_keys(user_id=principal.user_id, key_id=principal.key_id),
        *account_window_keys(user_id=principal.user_id),
        key_concurrency_key(user_id=principal.user_id, key_id=principal.key_id),
        usage_stream_key(shard_for_user(principal.user_id)),
        key_token_window_key(user_id=principal.user_id, key_id=principal.key_id),
        account_token_window_key(user_id=principal.user_id),
    )
    numbers = (*dataclasses.astuple(limits), lease_ms(), settings.USAGE_STREAM_MAX_LENGTH)
    return PrincipalShared(
        limits, tuple(name.encode() for name in names), ",".join(str(number) for number in numbers).encode()
    )


@receiver(setting_changed)
def forget_what_principals_share(*, setting: str, **kwargs: object) -> None:
    if setting in SETTINGS_SHARED:
        shared_by.cache_clear()


def limits_for(principal: KeyPrincipal) -> Limits:
    return shared_by(principal).limits


def script_keys(principal: KeyPrincipal) -> tuple[bytes, ...]:
    """Every key one decision touches; all share the account's shard tag (one Cluster slot)."""
    return shared_by(principal).keys


# Token windows, shared by DECIDE_SCRIPT and CHARGE_SCRIPT: a hash {input, output, at} of levels
# that drain at their limit per minute (a token bucket, as Anthropic's). A limit of -1 is none:
# that level is neither kept nor checked. `at` never goes back, whichever process's clock is ahead.
BUCKET_FUNCTIONS = """
local TOKEN_WINDOW_MS = 60000

local function drained(level, limit, elapsed)
  if limit < 0 or not level then return 0 end
  return math.max(level - elapsed * limit / TOKEN_WINDOW_MS, 0)
end

local function token_levels(key, in_limit, out_limit, now)
  if in_limit < 0 and out_limit < 0 then return 0, 0, now end
  local state = redis.call('HMGET', key, 'input', 'output', 'at')
  local at = tonumber(state[3])
  if not at then return 0, 0, now end
  local elapsed = math.max(now - at, 0)
  return drained(tonumber(state[1]), in_limit, elapsed), drained(tonumber(state[2]), out_limit, elapsed),
    math.max(now, at)
end

local function drain_ms(level, limit)
  if limit <= 0 then return 0 end
  return level * TOKEN_WINDOW_MS / limit
end

local function under(level, limit)
  return limit < 0 or level < limit
end

-- A correction may be below zero; no level goes below zero. The key goes once both have drained.
local function add_tokens(key, in_limit, out_limit, input_level, output_level, input, output, at)
  if in_limit < 0 and out_limit < 0 then return 0, 0 end
  input_level = math.max(input_level + input, 0)
  output_level = math.max(output_level + output, 0)
  redis.call('HSET', key, 'input', input_level, 'output', output_level, 'at', at)
  local until_empty = math.max(drain_ms(input_level, in_limit), drain_ms(output_level, out_limit))
  redis.call('PEXPIRE', key, math.ceil(until_empty) + 1000)
  return input_level, output_level
end
"""

# The tokens of finished requests, sent in the usage writer's round trip (gateway/usage/writer.py):
# each its input as counted minus the estimate charged at admission, and its output. KEYS: pairs
# of (a key's token levels, its account's), all in one shard. ARGV: now_ms, then per pair the key's
# input and output limits, the account's, the input tokens to add and the output tokens.
CHARGE_SCRIPT = (
    BUCKET_FUNCTIONS
    + """
local now = tonumber(ARGV[1])
local function charge(key, in_limit, out_limit, input, output)
  local input_level, output_level, at = token_levels(key, in_limit, out_limit, now)
  add_tokens(key, in_limit, out_limit, input_level, output_level, input, output, at)
end
for pair = 0, #KEYS / 2 - 1 do
  local a = 2 + pair * 6
  local input, output = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  charge(KEYS[pair * 2 + 1], tonumber(ARGV[a]), tonumber(ARGV[a + 1]), input, output)
  charge(KEYS[pair * 2 + 2], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), input, output)
end
return 1
"""
)


# KEYS: the key's minute, 5h, week, guard; the account's minute, 5h, week; the key's requests in
# flight; the account's usage stream; the key's token levels, the account's. ARGV: now_ms, mode
# (admit|guard|peek|give_back|backfill), member (the request id), the fixed numbers joined by
# commas (PrincipalShared.fixed_arguments: the limits in the order of `Limits`, the lease of an
# in-flight slot in ms, the usage stream's ceiling), for backfill how many admissions to add, what
# to write ahead to the usage stream (the admission, gateway/usage/record.py; or the request id
# given back), for give_back the id of the admission's stream entry, for admit the
# input tokens to charge (an estimate), then the ids of the key's requests that have ended (their
# slots are freed first). Returns the fields of Counts, in order, then the id of the admission's
# stream entry ('' if none was written).
DECIDE_SCRIPT = (
    BUCKET_FUNCTIONS
    + """
local now = tonumber(ARGV[1])
local mode = ARGV[2]
local member = ARGV[3]
local fixed = {}
for number in string.gmatch(ARGV[4], '[^,]+') do
  fixed[#fixed + 1] = tonumber(number)
end
local minute_limit, five_limit, week_limit, guard_limit = fixed[1], fixed[2], fixed[3], fixed[4]
local account_minute_limit, account_five_limit, account_week_limit = fixed[5], fixed[6], fixed[7]
local in_flight_limit = fixed[8]
local input_limit, output_limit, account_input_limit, account_output_limit = fixed[9], fixed[10], fixed[11], fixed[12]
local lease, usage_ceiling = fixed[13], fixed[14]
local backfill, usage_entry, admission_entry = tonumber(ARGV[5]), ARGV[6], ARGV[7]
local input_estimate = tonumber(ARGV[8])
local MINUTE, FIVE_HOURS, WEEK = 60000, 18000000, 604800000
local KEY_MINUTE, KEY_FIVE, KEY_WEEK, KEY_GUARD = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ACCOUNT_MINUTE, ACCOUNT_FIVE, ACCOUNT_WEEK, IN_FLIGHT = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local USAGE, KEY_TOKENS, ACCOUNT_TOKENS = KEYS[9], KEYS[10], KEYS[11]

for i = 9, #ARGV do
  redis.call('ZREM', IN_FLIGHT, ARGV[i])
end

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

local function count_fixed(key, left, length, count)
  if left < 0 then
    redis.call('HSET', key, 'ends_at', now + length, 'used', count)
    redis.call('PEXPIRE', key, length + MINUTE)
    return count, length
  end
  return redis.call('HINCRBY', key, 'used', count), left
end

local function record_rolling(key)
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, MINUTE)
end

local function uncount_fixed(key)
  if tonumber(redis.call('HGET', key, 'used') or '0') > 0 then
    redis.call('HINCRBY', key, 'used', -1)
  end
end

-- Usage written ahead: an admission's "started" entry, a give-back's "given back" one. Past the
-- stream's ceiling nothing is written (the writer then goes to the database; see writer.py).
local function write_ahead(field)
  if redis.call('XLEN', USAGE) < usage_ceiling then
    return redis.call('XADD', USAGE, '*', field, usage_entry)
  end
  return ''
end

local function later(a, b)  -- stream entry ids, "ms-seq"
  local a_ms, a_seq = string.match(a, '(%d+)-(%d+)')
  local b_ms, b_seq = string.match(b, '(%d+)-(%d+)')
  a_ms, a_seq, b_ms, b_seq = tonumber(a_ms), tonumber(a_seq), tonumber(b_ms), tonumber(b_seq)
  return a_ms > b_ms or (a_ms == b_ms and a_seq > b_seq)
end

local function read_by_a_drain(entry)
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', USAGE)) do
    for i = 1, #group, 2 do
      if group[i] == 'last-delivered-id' and not later(entry, group[i + 1]) then return true end
    end
  end
  return false
end

-- An admission given back: its entry is taken out of the stream while no drain has read it (so
-- that a flood of requests refused after admission leaves nothing behind); once read, a "given
-- back" entry tells the drain to forget it.
local function forget_admission()
  if admission_entry ~= '' and redis.call('EXISTS', USAGE) == 1 and not read_by_a_drain(admission_entry) then
    redis.call('XDEL', USAGE, admission_entry)
  else
    write_ahead('x')
  end
end

-- Slots whose lease ran out belonged to a process that died mid-request.
local function in_flight()
  redis.call('ZREMRANGEBYSCORE', IN_FLIGHT, '-inf', now)
  return redis.call('ZCARD', IN_FLIGHT)
end

-- Given back once: the minute entry is the proof that this request was counted.
if mode == 'give_back' then
  redis.call('ZREM', IN_FLIGHT, member)
  if redis.call('ZREM', KEY_MINUTE, member) == 1 then
    uncount_fixed(KEY_FIVE)
    uncount_fixed(KEY_WEEK)
    forget_admission()  -- no record will follow
  end
  if redis.call('ZREM', ACCOUNT_MINUTE, member) == 1 then
    uncount_fixed(ACCOUNT_FIVE)
    uncount_fixed(ACCOUNT_WEEK)
  end
end

local minute_used, minute_oldest, minute_newest = rolling(KEY_MINUTE)
local five_used, five_left = fixed(KEY_FIVE)
local week_used, week_left = fixed(KEY_WEEK)
local guard_used, guard_oldest = rolling(KEY_GUARD)
local account_minute_used, account_minute_oldest, account_minute_newest = rolling(ACCOUNT_MINUTE)
local account_five_used, account_five_left = fixed(ACCOUNT_FIVE)
local account_week_used, account_week_left = fixed(ACCOUNT_WEEK)
local in_flight_used = in_flight()
local key_input, key_output, key_tokens_at = token_levels(KEY_TOKENS, input_limit, output_limit, now)
local account_input, account_output, account_tokens_at =
  token_levels(ACCOUNT_TOKENS, account_input_limit, account_output_limit, now)
local admitted = 0
local admission = ''

if mode == 'admit' then
  if minute_used < minute_limit and five_used < five_limit and week_used < week_limit
      and account_minute_used < account_minute_limit and account_five_used < account_five_limit
      and account_week_used < account_week_limit and in_flight_used < in_flight_limit
      and under(key_input, input_limit) and under(key_output, output_limit)
      and under(account_input, account_input_limit) and under(account_output, account_output_limit) then
    admitted = 1
    -- Everything an admission records, in one place.
    record_rolling(KEY_MINUTE)
    record_rolling(ACCOUNT_MINUTE)
    if minute_used == 0 then minute_oldest = now end
    if account_minute_used == 0 then account_minute_oldest = now end
    minute_used, minute_newest = minute_used + 1, now
    account_minute_used, account_minute_newest = account_minute_used + 1, now
    five_used, five_left = count_fixed(KEY_FIVE, five_left, FIVE_HOURS, 1)
    week_used, week_left = count_fixed(KEY_WEEK, week_left, WEEK, 1)
    account_five_used, account_five_left = count_fixed(ACCOUNT_FIVE, account_five_left, FIVE_HOURS, 1)
    account_week_used, account_week_left = count_fixed(ACCOUNT_WEEK, account_week_left, WEEK, 1)
    redis.call('ZADD', IN_FLIGHT, now + lease, member)
    redis.call('PEXPIRE', IN_FLIGHT, lease)
    in_flight_used = in_flight_used + 1
    key_input, key_output = add_tokens(
      KEY_TOKENS, input_limit, output_limit, key_input, key_output, input_estimate, 0, key_tokens_at)
    account_input, account_output = add_tokens(
      ACCOUNT_TOKENS, account_input_limit, account_output_limit, account_input, account_output, input_estimate, 0,
      account_tokens_at)
    admission = write_ahead('s')  -- the request's record completes it; if none comes, it is stored as interrupted
  end
elseif mode == 'guard' then
  if guard_used < guard_limit then
    admitted = 1
    record_rolling(KEY_GUARD)
    if guard_used == 0 then guard_oldest = now end
    guard_used = guard_used + 1
  end
elseif mode == 'backfill' then
  -- Requests admitted unchecked while Redis was away: the long windows must still count them.
  admitted = 1
  five_used, five_left = count_fixed(KEY_FIVE, five_left, FIVE_HOURS, backfill)
  week_used, week_left = count_fixed(KEY_WEEK, week_left, WEEK, backfill)
  account_five_used, account_five_left = count_fixed(ACCOUNT_FIVE, account_five_left, FIVE_HOURS, backfill)
  account_week_used, account_week_left = count_fixed(ACCOUNT_WEEK, account_week_left, WEEK, backfill)
else
  admitted = 1
end

return {admitted, minute_used, minute_oldest, minute_newest, five_used, five_left,
        week_used, week_left, guard_used, guard_oldest,
        account_minute_used, account_minute_oldest, account_minute_newest,
        account_five_used, account_five_left, account_week_used, account_week_left, in_flight_used,
        math.floor(key_input), math.floor(key_output), math.floor(account_input), math.floor(account_output),
        admission}
"""
)
DECIDE_SCRIPT_SHA = hashlib.sha1(DECIDE_SCRIPT.encode(), usedforsecurity=False).hexdigest()


def lease_ms() -> int:
    return int(settings.GATEWAY_CONCURRENCY_LEASE_SECONDS * 1000)


def script_arguments(
    principal: KeyPrincipal,
    mode: str,
    member: str,
    now_ms: int,
    backfill: int = 0,
    ended: tuple[str, ...] = (),
    admission_entry: str = "",
    input_estimate: int = 0,
) -> list[object]:
    return [
        now_ms,
        mode,
        member,
        shared_by(principal).fixed_arguments,
        backfill,
        usage_entry(principal, mode, member, now_ms),
        admission_entry,
        input_estimate,
        *ended,
    ]


def usage_entry(principal: KeyPrincipal, mode: str, member: str, now_ms: int) -> bytes:
    """What the script writes ahead to the usage stream: the admission (or its give-back)."""
    if mode == "admit":
        return AdmissionStart(member, principal.key_id, principal.user_id, now_ms).to_json()
    return member.encode() if mode == "give_back" else b""


@dataclass(frozen=True, slots=True)
class TokenCharge:
    """A finished request's tokens for its key's and account's token windows: the input counted
    minus the estimate charged at admission (so possibly below zero), and the output."""

    shard: int
    keys: tuple[bytes, bytes]  # the key's token levels, the account's
    limits: tuple[int, int, int, int]  # the key's input and output limits, the account's
    input_tokens: int
    output_tokens: int

    def limit_pairs(self) -> tuple[tuple[int, int], tuple[int, int]]:
        return (self.limits[0], self.limits[1]), (self.limits[2], self.limits[3])


def token_charge(principal: KeyPrincipal, input_correction: int, output_tokens: int) -> TokenCharge:
    limits = limits_for(principal)
    *_, key_tokens, account_tokens = script_keys(principal)
    return TokenCharge(
        shard_for_user(principal.user_id),
        (key_tokens, account_tokens),
        (limits.input_tokens, limits.output_tokens, limits.account_input_tokens, limits.account_output_tokens),
        input_correction,
        output_tokens,
    )


def add_token_charges(pipe: redis.asyncio.client.Pipeline, charges: Sequence[TokenCharge], now_ms: int) -> None:
    """One CHARGE_SCRIPT call per shard (its keys share a Cluster slot) for all of `charges`."""
    by_shard: dict[int, tuple[list[bytes], list[object]]] = {}
    for charge in charges:
        keys, arguments = by_shard.setdefault(charge.shard, ([], [now_ms]))
        keys.extend(charge.keys)
        arguments.extend((*charge.limits, charge.input_tokens, charge.output_tokens))
    for keys, arguments in by_shard.values():
        # EVAL, not EVALSHA: a Redis that restarted has forgotten scripts, and a pipeline cannot load one midway.
        pipe.eval(CHARGE_SCRIPT, len(keys), *keys, *arguments)


COUNT_FIELDS = len(Counts.__slots__)


def _counts(raw: list[int]) -> Counts:
    return Counts(bool(raw[0]), *(int(value) for value in raw[1:COUNT_FIELDS]))


def _admission_entry(raw: list[object]) -> str:
    entry = raw[COUNT_FIELDS]
    return entry.decode() if isinstance(entry, bytes) else str(entry)


class Circuit:
    """Whether to ask Redis at all: after consecutive failed round trips it stays away for a moment,
    so that an outage adds no timeouts to requests, then lets one round trip through as a probe.

    One slow round trip fails only the decisions that travelled on it.
    """

    FAILURES_TO_OPEN = 2
    OPEN_SECONDS = 1.0

    def __init__(self) -> None:
        self._consecutive_failures = 0
        self._open_until = 0.0
        self._probing = False

    def allows(self) -> bool:
        if self._consecutive_failures < self.FAILURES_TO_OPEN:
            return True
        if self._probing or time.monotonic() < self._open_until:
            return False
        self._probing = True
        return True

    def succeeded(self) -> None:
        self._consecutive_failures = 0
        self._probing = False

    def failed(self) -> None:
        self._consecutive_failures += 1
        self._probing = False
        if self._consecutive_failures >= self.FAILURES_TO_OPEN:
            self._open_until = time.monotonic() + self.OPEN_SECONDS


@dataclass(slots=True)
class _Call:
    keys: Sequence[bytes]
    args: list[object]
    future: asyncio.Future[list[int]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class ScriptPipeline:
    """Runs DECIDE_SCRIPT calls made in the same turn of the event loop as one pipeline.

    At most `connections` pipelines are in flight; calls made meanwhile wait for the next one.
    A burst of a thousand decisions therefore costs a few round trips over a few connections,
    instead of a connection each (a pool that runs out) or a queue of single round trips.
    """

    def __init__(self, client: redis.asyncio.Redis, connections: int, circuit: Circuit) -> None:
        self.client = client
        self._connections = connections
        self._circuit = circuit
        self._waiting: list[_Call] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._scheduled = False

    async def call(self, keys: Sequence[bytes], args: list[object]) -> list[int]:
        if not self._circuit.allows():
            raise CircuitOpen("Redis failed a moment ago: not asked until the circuit lets a probe through")
        call = _Call(keys, args)
        self._waiting.append(call)
        self._send_soon()
        return await call.future

    def _send_soon(self) -> None:
        # Wait for the end of this turn of the loop, so that every decision made in it goes along.
        if not self._scheduled and self._waiting and len(self._in_flight) < self._connections:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._send_waiting)

    def _send_waiting(self) -> None:
        self._scheduled = False
        if not self._waiting or len(self._in_flight) >= self._connections:
            return
        batch, self._waiting = self._waiting, []
        task = asyncio.get_running_loop().create_task(self._send(batch), name="limiter-pipeline")
        self._in_flight.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._send_soon()

    async def _send(self, batch: list[_Call]) -> None:
        try:
            results = await self._execute(batch)
        except UNREACHABLE as exc:
            self._circuit.failed()
            for call in batch:
                if not call.future.done():
                    call.future.set_exception(exc)
            return
        self._circuit.succeeded()
        for call, result in zip(batch, results, strict=True):
            if call.future.done():
                continue
            if isinstance(result, Exception):
                call.future.set_exception(result)
            else:
                call.future.set_result(result)

    async def _execute(self, batch: list[_Call]) -> list[object]:
        results = await self._pipeline(batch)
        if any(isinstance(result, redis.exceptions.NoScriptError) for result in results):
            # A restarted (empty) Redis: load the script once and send the batch again.
            await self.client.script_load(DECIDE_SCRIPT)
            results = await self._pipeline(batch)
        return results

    async def _pipeline(self, batch: list[_Call]) -> list[object]:
        async with self.client.pipeline(transaction=False) as pipe:
            for call in batch:
                pipe.evalsha(DECIDE_SCRIPT_SHA, len(call.keys), *call.keys, *call.args)
            return await pipe.execute(raise_on_error=False)

    async def pipeline_for(self, key: bytes) -> ScriptPipeline:
        return self  # one Redis holds every key

    async def close(self) -> None:
        for task in list(self._in_flight):
            await asyncio.gather(task, return_exceptions=True)
        await self.client.aclose()


class CircuitOpen(redis.ConnectionError):
    """A decision not sent at all, its Redis having failed the last round trips (Circuit)."""


# What a master that is out (or between owners of its slots, in a failover) answers.
MASTER_FAILURES = (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterDownError, OSError)


class ClusterScriptPipelines:
    """DECIDE_SCRIPT calls on a Redis Cluster: each goes to the ScriptPipeline of the master that
    holds its keys' slot (they share one, gateway/redis_keys.py), with a Circuit of its own, so
    that a master that is out fails open the decisions of its own accounts and no others.

    A MOVED answer (the slot went to another master) sends the call again after learning the slot
    map anew; a master that fails makes the map be learnt again soon, in case a replica took over.
    """

    def __init__(self, seed_urls: list[str], connections: int, timeout: float) -> None:
        self._owners = SlotOwners(seed_urls, timeout)
        self._connections = connections
        self._timeout = timeout
        self._pipelines: dict[Address, ScriptPipeline] = {}

    async def call(self, keys: Sequence[bytes], args: list[object]) -> list[int]:
        try:
            return await self._send(keys, args)
        except redis.exceptions.MovedError:
            await self._owners.refresh()  # the slot has another master now
            return await self._send(keys, args)

    async def _send(self, keys: Sequence[bytes], args: list[object]) -> list[int]:
        pipeline = await self.pipeline_for(keys[0])
        try:
            return await pipeline.call(keys, args)
        except MASTER_FAILURES as exc:
            if not isinstance(exc, CircuitOpen):
                self._owners.refresh_soon()
            raise

    async def pipeline_for(self, key: bytes) -> ScriptPipeline:
        address = await self._owners.owner_of(key)
        if (pipeline := self._pipelines.get(address)) is None:
            host, port = address
            pool = redis.asyncio.BlockingConnectionPool(
                host=host,
                port=port,
                max_connections=self._connections,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                **self._owners.connection_options,
            )
            client = redis.asyncio.Redis.from_pool(pool)
            pipeline = self._pipelines[address] = ScriptPipeline(client, self._connections, Circuit())
        return pipeline

    async def close(self) -> None:
        for pipeline in self._pipelines.values():
            await pipeline.close()


Scripts = ScriptPipeline | ClusterScriptPipelines


def limiter_scripts(url: str = "") -> Scripts:
    """Where the limiter sends its scripts: the gateway's Redis (or the plain Redis at `url`).
    As many connections as pipelines may be in flight, so that taking one never waits or fails."""
    connections, timeout = settings.GATEWAY_LIMITER_CONNECTIONS, settings.GATEWAY_LIMITER_TIMEOUT_SECONDS
    if is_cluster() and not url:
        return ClusterScriptPipelines(node_urls(), connections, timeout)
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url or gateway_redis_url(), max_connections=connections, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    return ScriptPipeline(redis.asyncio.Redis.from_pool(pool), connections, Circuit())  # the client closes the pool


class RedisLimiter:
    """The limiter of production: one script call per decision, pipelined with its neighbours."""

    def __init__(self, scripts: Scripts, clock: Clock = time.time) -> None:
        self._scripts = scripts
        self._clock = clock
        self._ended: dict[int, list[str]] = {}  # key id -> its requests that ended, slots not yet freed

    async def decide(self, principal: KeyPrincipal, mode: str, member: str, input_estimate: int = 0) -> Decision:
        """Decide (and, for admit, count) a request; an admission adds `input_estimate` to the
        input token windows, corrected by a TokenCharge once the request has ended."""
        return await self._run(principal, mode, member, input_estimate=input_estimate)

    async def charge(self, charge: TokenCharge) -> None:
        """Add a finished request's tokens on their own; the gateway sends them in the usage
        writer's round trip instead (`add_token_charges`)."""
        pipeline = await self._scripts.pipeline_for(charge.keys[0])
        async with pipeline.client.pipeline(transaction=False) as pipe:
            add_token_charges(pipe, [charge], int(self._clock() * 1000))
            await pipe.execute()

    async def give_back(self, principal: KeyPrincipal, member: str, admission_entry: str = "") -> Decision:
        """Uncount an admitted request (once), free its slot and forget its admission in the usage
        stream; returns the windows after."""
        return await self._run(principal, "give_back", member, admission_entry=admission_entry)

    async def backfill(self, principal: KeyPrincipal, admissions: int) -> None:
        """Add requests admitted without Redis to the key's and the account's 5-hour and weekly windows."""
        await self._run(principal, "backfill", "", admissions)

    def release(self, principal: KeyPrincipal, member: str) -> None:
        """Free a finished request's slot without a round trip of its own: the request's usage
        record frees it in the round trip that writes the record (gateway/usage/writer.py), and the key's
        next decision in this process, if it comes first (a client that keeps all its slots busy
        sends its next request the moment an answer ends), frees it in its own script call. A slot
        left behind by a dead process frees itself when its lease runs out."""
        ended = self._ended.setdefault(principal.key_id, [])
        if len(ended) < principal.concurrent_requests_per_key:
            ended.append(member)
        if len(self._ended) > ENDED_KEYS_KEPT:  # only a head start on the usage write: forget it
            self._ended.clear()

    async def _run(
        self,
        principal: KeyPrincipal,
        mode: str,
        member: str,
        backfill: int = 0,
        admission_entry: str = "",
        input_estimate: int = 0,
    ) -> Decision:
        now_ms = int(self._clock() * 1000)
        ended = tuple(self._ended.pop(principal.key_id, ())) if mode == "admit" else ()
        arguments = script_arguments(principal, mode, member, now_ms, backfill, ended, admission_entry, input_estimate)
        raw = await self._scripts.call(script_keys(principal), arguments)
        return decision_from_counts(_counts(raw), principal, now_ms, _admission_entry(raw))

    async def close(self) -> None:
        await self._scripts.close()


def read_windows_from_redis(principal: KeyPrincipal, clock: Clock = time.time) -> Decision:
    """The windows of a key, read without counting anything (for the dashboard)."""
    client = sync_gateway_redis(socket_timeout=2, socket_connect_timeout=2)
    try:
        now_ms = int(clock() * 1000)
        raw = client.register_script(DECIDE_SCRIPT)(
            keys=script_keys(principal), args=script_arguments(principal, "peek", "", now_ms)
        )
        return decision_from_counts(_counts(raw), principal, now_ms)
    except UNREACHABLE:
        return UNKNOWN
    finally:
        client.close()


class InProcessLimiter:
    """The embedded limiter: the rules of DECIDE_SCRIPT, step for step, for one process without Redis."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._rolling: dict[bytes, deque[tuple[int, str]]] = {}
        self._fixed: dict[bytes, tuple[int, int]] = {}  # key -> (ends at, used)
        self._in_flight: dict[bytes, dict[str, int]] = {}  # key -> request id -> lease end
        self._tokens: dict[bytes, tuple[float, float, int]] = {}  # key -> (input level, output level, at ms)

    async def decide(self, principal: KeyPrincipal, mode: str, member: str, input_estimate: int = 0) -> Decision:
        return self.decide_now(principal, mode, member, input_estimate=input_estimate)

    async def charge(self, charge: TokenCharge) -> None:
        self.charge_now(charge)

    def charge_now(self, charge: TokenCharge) -> None:
        now_ms = int(self._clock() * 1000)
        for key, (input_limit, output_limit) in zip(charge.keys, charge.limit_pairs(), strict=True):
            levels = self._token_levels(key, input_limit, output_limit, now_ms)
            self._add_tokens(key, levels, (charge.input_tokens, charge.output_tokens), now_ms)

    async def give_back(self, principal: KeyPrincipal, member: str, admission_entry: str = "") -> Decision:
        return self.decide_now(principal, "give_back", member)

    async def backfill(self, principal: KeyPrincipal, admissions: int) -> None:
        self.decide_now(principal, "backfill", "", admissions)

    def release(self, principal: KeyPrincipal, member: str) -> None:
        self._in_flight.get(script_keys(principal)[7], {}).pop(member, None)

    async def close(self) -> None:
        return None

    def decide_now(
        self, principal: KeyPrincipal, mode: str, member: str, backfill: int = 0, input_estimate: int = 0
    ) -> Decision:
        now_ms = int(self._clock() * 1000)
        key_minute, key_five, key_week, key_guard, account_minute, account_five, account_week, in_flight, *_ = (
            script_keys(principal)
        )
        if mode == "give_back":
            self._give_back(
                member, (key_minute, key_five, key_week), (account_minute, account_five, account_week), in_flight
            )
        limits = limits_for(principal)
        minute = self._trimmed(key_minute, now_ms)
        account_minute_entries = self._trimmed(account_minute, now_ms)
        guard = self._trimmed(key_guard, now_ms)
        slots = self._slots(in_flight, now_ms)
        fixed = {name: self._fixed_state(name, now_ms) for name in (key_five, key_week, account_five, account_week)}
        token_limits = self._token_keys(principal)
        tokens = {key: self._token_levels(key, *limits_of, now_ms) for key, limits_of in token_limits.items()}
        admitted = True
        if mode == "admit":
            admitted = (
                len(minute) < limits.minute
                and fixed[key_five][0] < limits.five_hours
                and fixed[key_week][0] < limits.week
                and len(account_minute_entries) < limits.account_minute
                and fixed[account_five][0] < limits.account_five_hours
                and fixed[account_week][0] < limits.account_week
                and len(slots) < limits.in_flight
                and all(
                    _under(level, limit)
                    for key, limits_of in token_limits.items()
                    for level, limit in zip(tokens[key], limits_of, strict=True)
                )
            )
            if admitted:
                minute.append((now_ms, member))
                account_minute_entries.append((now_ms, member))
                slots[member] = now_ms + lease_ms()
                self._count_all_fixed(fixed, 1, now_ms)
                for key in token_limits:
                    tokens[key] = self._add_tokens(key, tokens[key], (input_estimate, 0), now_ms)
        elif mode == "guard":
            admitted = len(guard) < limits.guard
            if admitted:
                guard.append((now_ms, member))
        elif mode == "backfill":
            self._count_all_fixed(fixed, backfill, now_ms)
        counts = Counts(
            admitted,
            *_rolling_counts(minute),
            *fixed[key_five],
            *fixed[key_week],
            *_rolling_counts(guard)[:2],
            *_rolling_counts(account_minute_entries),
            *fixed[account_five],
            *fixed[account_week],
            len(slots),
            *(math.floor(level) for levels in tokens.values() for level in levels),
        )
        return decision_from_counts(counts, principal, now_ms)

    @staticmethod
    def _token_keys(principal: KeyPrincipal) -> dict[bytes, tuple[int, int]]:
        """The key's and the account's token levels, each with its (input, output) limits."""
        charge = token_charge(principal, 0, 0)
        return dict(zip(charge.keys, charge.limit_pairs(), strict=True))

    def _token_levels(self, key: bytes, input_limit: int, output_limit: int, now_ms: int) -> tuple[float, float]:
        input_level, output_level, at_ms = self._tokens.get(key, (0.0, 0.0, now_ms))
        elapsed_ms = max(now_ms - at_ms, 0)
        return _drained(input_level, input_limit, elapsed_ms), _drained(output_level, output_limit, elapsed_ms)

    def _add_tokens(
        self, key: bytes, levels: tuple[float, float], tokens: tuple[int, int], now_ms: int
    ) -> tuple[float, float]:
        added = (max(levels[0] + tokens[0], 0.0), max(levels[1] + tokens[1], 0.0))
        self._tokens[key] = (*added, now_ms)
        return added

    def _give_back(self, member: str, own: tuple[bytes, ...], account: tuple[bytes, ...], in_flight: bytes) -> None:
        self._in_flight.get(in_flight, {}).pop(member, None)
        for minute, *fixed_windows in (own, account):
            entries = self._rolling.get(minute, deque())
            entry = next((entry for entry in entries if entry[1] == member), None)
            if entry is None:
                continue
            entries.remove(entry)
            for name in fixed_windows:
                ends_at, used = self._fixed.get(name, (0, 0))
                if used > 0:
                    self._fixed[name] = (ends_at, used - 1)

    def _count_all_fixed(self, fixed: dict[bytes, tuple[int, int]], count: int, now_ms: int) -> None:
        for name, (used, left_ms) in fixed.items():
            length_ms = FIVE_HOURS_MS if name.endswith(b":5h") else WEEK_MS
            if left_ms < 0:
                self._fixed[name] = (now_ms + length_ms, count)
                fixed[name] = (count, length_ms)
            else:
                ends_at, _ = self._fixed[name]
                self._fixed[name] = (ends_at, used + count)
                fixed[name] = (used + count, left_ms)

    def _trimmed(self, key: bytes, now_ms: int) -> deque[tuple[int, str]]:
        entries = self._rolling.setdefault(key, deque())
        while entries and entries[0][0] <= now_ms - MINUTE_MS:
            entries.popleft()
        return entries

    def _slots(self, key: bytes, now_ms: int) -> dict[str, int]:
        slots = self._in_flight.setdefault(key, {})
        for member in [member for member, lease_end in slots.items() if lease_end <= now_ms]:
            del slots[member]
        return slots

    def _fixed_state(self, key: bytes, now_ms: int) -> tuple[int, int]:
        ends_at, used = self._fixed.get(key, (0, 0))
        return (used, ends_at - now_ms) if ends_at > now_ms else (0, -1)


def _drained(level: float, limit: int, elapsed_ms: int) -> float:
    if limit == NO_LIMIT:
        return 0.0
    return max(level - elapsed_ms * limit / MINUTE_MS, 0.0)


def _under(level: float, limit: int) -> bool:
    return limit == NO_LIMIT or level < limit


def _rolling_counts(entries: deque[tuple[int, str]]) -> tuple[int, int, int]:
    """Used, oldest and newest time of a rolling window."""
    return (len(entries), entries[0][0], entries[-1][0]) if entries else (0, 0, 0)


class FailOpenLimiter:
    """Keeps serving when Redis is away: a decision Redis could not answer admits the request.

    Only a Redis that cannot be reached (refused, reset, timed out) or answers with an error of
    its own counts; the limiter's own connections never run out (ScriptPipeline). Admissions made
    meanwhile are remembered per key and added to the key's and the account's 5-hour and weekly
    windows once Redis answers again. Failures are logged at most once per
    GATEWAY_LIMITER_LOG_INTERVAL_SECONDS and counted in `failures` (a metric).
    """

    def __init__(self, inner: RedisLimiter) -> None:
        self.inner = inner
        self.failures = 0
        self._last_logged = float("-inf")
        self._unrecorded: dict[int, tuple[KeyPrincipal, int]] = {}  # key id -> (principal, admissions)
        self._backfilling: asyncio.Task[None] | None = None

    async def decide(self, principal: KeyPrincipal, mode: str, member: str, input_estimate: int = 0) -> Decision:
        try:
            return await self.inner.decide(principal, mode, member, input_estimate)
        except CircuitOpen:
            return self._unchecked(principal, mode)
        except UNREACHABLE as exc:
            self._failed(exc)
            return self._unchecked(principal, mode)

    async def give_back(self, principal: KeyPrincipal, member: str, admission_entry: str = "") -> Decision:
        try:
            return await self.inner.give_back(principal, member, admission_entry)
        except UNREACHABLE as exc:
            self._failed(exc)
            return UNKNOWN

    def release(self, principal: KeyPrincipal, member: str) -> None:
        self.inner.release(principal, member)

    @property
    def unrecorded_admissions(self) -> int:
        return sum(admissions for _, admissions in self._unrecorded.values())

    async def close(self) -> None:
        if self._backfilling is not None:
            self._backfilling.cancel()
            await asyncio.gather(self._backfilling, return_exceptions=True)
        await self.inner.close()

    def _unchecked(self, principal: KeyPrincipal, mode: str) -> Decision:
        self.failures += 1
        if mode == "admit":
            self._remember(principal, 1)
            if self._backfilling is None:
                self._backfilling = asyncio.get_running_loop().create_task(self._backfill(), name="limiter-backfill")
        return UNKNOWN

    def _remember(self, principal: KeyPrincipal, admissions: int) -> None:
        _, earlier = self._unrecorded.get(principal.key_id, (principal, 0))
        self._unrecorded[principal.key_id] = (principal, earlier + admissions)

    async def _backfill(self) -> None:
        """Until Redis has counted every unchecked admission: tried once a second, whether or not
        this process gets another request (with several workers, it may not)."""
        try:
            while self._unrecorded:
                await asyncio.sleep(Circuit.OPEN_SECONDS)
                pending, self._unrecorded = self._unrecorded, {}
                outcomes = await asyncio.gather(
                    *(self.inner.backfill(principal, admissions) for principal, admissions in pending.values()),
                    return_exceptions=True,
                )
                for (principal, admissions), outcome in zip(pending.values(), outcomes, strict=True):
                    if isinstance(outcome, BaseException):  # still away: kept for the next try
                        self._remember(principal, admissions)
        finally:
            self._backfilling = None

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        now = time.monotonic()
        if now - self._last_logged >= settings.GATEWAY_LIMITER_LOG_INTERVAL_SECONDS:
            self._last_logged = now
            logger.warning("rate limiter unavailable, admitting requests unchecked (%d so far): %r", self.failures, exc)


Limiter = InProcessLimiter | FailOpenLimiter
_limiter: Limiter | None = None


def limiter() -> Limiter:
    """This process's limiter: on the gateway's Redis when there is one, in-process otherwise."""
    global _limiter  # one per process
    if _limiter is None:
        _limiter = FailOpenLimiter(RedisLimiter(limiter_scripts())) if gateway_redis_url() else InProcessLimiter()
    return _limiter


async def close_limiter() -> None:
    global _limiter
    if _limiter is not None:
        await _limiter.close()
    _limiter = None


def read_windows(principal: KeyPrincipal) -> Decision:
    """The current windows of a key, for pages: nothing is counted."""
    if gateway_redis_url():
        return read_windows_from_redis(principal)
    current = limiter()
    return current.decide_now(principal, "peek", "") if isinstance(current, InProcessLimiter) else UNKNOWN


def rfc3339(epoch_ms: int) -> str:
    """2026-12-01T14:05:10.114Z: a few of these go out with every request (the rate-limit headers),
    and most fall in the same seconds, whose formatted part is kept."""
    seconds, milliseconds = divmod(int(epoch_ms), 1000)
    return f"{_utc_second(seconds)}.{milliseconds:03d}Z"


@functools.lru_cache(maxsize=4096)
def _utc_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
