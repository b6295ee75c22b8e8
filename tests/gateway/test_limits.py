"""The limiter's arithmetic, with an injectable clock, for the Redis script and the in-process twin."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from gateway.limits import (
    FIVE_HOURS_MS,
    MINUTE_MS,
    WEEK_MS,
    FailOpenLimiter,
    InProcessLimiter,
    RedisLimiter,
    limiter_scripts,
    token_charge,
)
from keys.selectors import KeyPrincipal
from tests.servers import RedisServer

START = 1_800_000_000.0  # seconds since the epoch; any fixed instant will do
_key_ids = itertools.count(10_000_000)


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, milliseconds: int) -> None:
        self.now += milliseconds / 1000


def principal(
    per_minute: int = 1000,
    per_5_hours: int = 100_000,
    per_week: int = 1_000_000,
    *,
    user_id: int | None = None,
    max_keys: int = 2,
    concurrent: int = 1000,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
) -> KeyPrincipal:
    """A key of its own account, unless `user_id` names one shared with other keys."""
    key_id = next(_key_ids)
    return KeyPrincipal(
        key_id=key_id,
        user_id=key_id if user_id is None else user_id,
        user_is_active=True,
        plan_slug="test",
        plan_name="Test",
        requests_per_minute=per_minute,
        requests_per_5_hours=per_5_hours,
        requests_per_week=per_week,
        max_keys=max_keys,
        concurrent_requests_per_key=concurrent,
        input_tokens_per_minute=input_tokens,
        output_tokens_per_minute=output_tokens,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["redis", "in-process"])
async def limiter(request, clock) -> AsyncIterator[RedisLimiter | InProcessLimiter]:
    chosen = RedisLimiter(limiter_scripts(), clock) if request.param == "redis" else InProcessLimiter(clock)
    yield chosen
    await chosen.close()


def ms(clock: FakeClock) -> int:
    return int(clock() * 1000)


async def admit_n(limiter, key: KeyPrincipal, count: int) -> list:
    return [await limiter.decide(key, "admit", f"req-{index}") for index in range(count)]


async def test_minute_window_rolls(limiter, clock):
    key = principal(per_minute=3)
    remaining = []
    for _ in range(3):
        decision = await limiter.decide(key, "admit", f"r{clock.now}")
        remaining.append(decision.windows[0].remaining)
        clock.advance(10_000)
    assert remaining == [2, 1, 0]
    refused = await limiter.decide(key, "admit", "r-refused")
    assert not refused.admitted
    assert refused.refusing_window().name == "minute"
    assert refused.refusing_window().next_admission_ms == int(START * 1000) + MINUTE_MS  # the first leaves
    clock.advance(MINUTE_MS - 30_000)  # exactly one minute after the first request
    assert (await limiter.decide(key, "admit", "r-later")).admitted
    assert not (await limiter.decide(key, "admit", "r-too-soon")).admitted


async def test_refused_requests_are_not_recorded(limiter, clock):
    key = principal(per_minute=2)
    await admit_n(limiter, key, 2)
    for _ in range(5):
        assert not (await limiter.decide(key, "admit", "again")).admitted
    clock.advance(MINUTE_MS)
    decision = await limiter.decide(key, "admit", "fresh")
    assert decision.admitted
    assert decision.windows[0].used == 1
    assert decision.windows[1].used == 3  # the five refusals never counted in the 5-hour window


async def test_five_hour_window_opens_with_the_first_request_and_resets_when_advertised(limiter, clock):
    key = principal(per_5_hours=4)
    opened = ms(clock)
    first = await limiter.decide(key, "admit", "a")
    assert first.windows[1].reset_at_ms == opened + FIVE_HOURS_MS
    clock.advance(2 * 3_600_000)
    decisions = await admit_n(limiter, key, 3)
    assert [decision.windows[1].remaining for decision in decisions] == [2, 1, 0]
    assert all(decision.windows[1].reset_at_ms == opened + FIVE_HOURS_MS for decision in decisions)
    refused = await limiter.decide(key, "admit", "e")
    assert refused.refusing_window().name == "5h"
    assert refused.refusing_window().next_admission_ms == opened + FIVE_HOURS_MS
    clock.advance(3 * 3_600_000 - 1)
    assert not (await limiter.decide(key, "admit", "f")).admitted
    clock.advance(1)
    reopened = await limiter.decide(key, "admit", "g")
    assert reopened.admitted
    assert reopened.windows[1].reset_at_ms == ms(clock) + FIVE_HOURS_MS
    assert reopened.windows[1].remaining == 3


async def test_week_window(limiter, clock):
    key = principal(per_week=2)
    opened = ms(clock)
    await admit_n(limiter, key, 2)
    clock.advance(6 * 24 * 3_600_000)
    refused = await limiter.decide(key, "admit", "c")
    assert refused.refusing_window().name == "week"
    assert refused.refusing_window().next_admission_ms == opened + WEEK_MS
    clock.advance(24 * 3_600_000)
    assert (await limiter.decide(key, "admit", "d")).admitted


async def test_an_empty_fixed_window_shows_a_full_length_ahead(limiter, clock):
    decision = await limiter.decide(principal(), "peek", "")
    minute, five_hours, week = decision.windows
    assert (minute.used, five_hours.used, week.used) == (0, 0, 0)
    assert five_hours.reset_at_ms == ms(clock) + FIVE_HOURS_MS
    assert week.reset_at_ms == ms(clock) + WEEK_MS


async def test_peek_counts_nothing(limiter):
    key = principal(per_minute=1)
    for _ in range(3):
        assert (await limiter.decide(key, "peek", "")).admitted
    assert (await limiter.decide(key, "admit", "real")).admitted


async def test_give_back_returns_the_request_to_every_window(limiter):
    key = principal(per_minute=1, per_5_hours=1)
    await limiter.decide(key, "admit", "lost-to-an-outage")
    await limiter.give_back(key, "lost-to-an-outage")
    await limiter.give_back(key, "lost-to-an-outage")  # twice is harmless
    decision = await limiter.decide(key, "admit", "next")
    assert decision.admitted
    assert decision.windows[1].used == 1


async def test_guard_is_apart_from_the_plan_windows(limiter, clock):
    key = principal(per_minute=1)  # guard: 10 per minute
    for index in range(10):
        assert (await limiter.decide(key, "guard", f"g{index}")).admitted
    refused = await limiter.decide(key, "guard", "g-too-many")
    assert refused.refusing_window().name == "guard"
    assert (await limiter.decide(key, "admit", "message")).admitted  # the plan window is untouched


async def test_the_binding_window_is_the_one_that_keeps_the_client_waiting_longest(limiter):
    key = principal(per_minute=1, per_5_hours=1)
    await limiter.decide(key, "admit", "only")
    refused = await limiter.decide(key, "admit", "second")
    assert refused.refusing_window().name == "5h"


async def test_an_account_gets_at_most_max_keys_times_each_limit_whatever_its_keys(limiter, clock):
    first = principal(per_minute=3, max_keys=2)
    admitted = [(await limiter.decide(first, "admit", f"a{index}")).admitted for index in range(3)]
    assert admitted == [True, True, True]
    # The first key is revoked and others created: the account's minute still remembers it.
    replacements = [principal(per_minute=3, max_keys=2, user_id=first.user_id) for _ in range(3)]
    outcomes = [
        (await limiter.decide(key, "admit", f"{key.key_id}-{index}")).admitted
        for key in replacements
        for index in range(3)
    ]
    assert outcomes.count(True) == 3  # 2 keys x 3 per minute for the whole account
    refused = await limiter.decide(replacements[-1], "admit", "one-more")
    assert refused.refusing_window().name == "account-minute"
    assert refused.binding_windows()[0].name == "account-minute"  # the headers show what binds
    clock.advance(MINUTE_MS)
    assert (await limiter.decide(replacements[-1], "admit", "next-minute")).admitted


async def test_the_account_ceiling_holds_the_long_windows_too(limiter):
    first = principal(per_5_hours=2, max_keys=1)
    await admit_n(limiter, first, 2)
    again = principal(per_5_hours=2, max_keys=1, user_id=first.user_id)
    refused = await limiter.decide(again, "admit", "fresh-key")
    assert refused.refusing_window().name == "account-5h"
    assert refused.windows[1].used == 0  # the new key's own window is untouched


async def test_requests_in_flight_per_key_are_capped_and_freed(limiter, clock):
    key = principal(concurrent=2)
    assert (await limiter.decide(key, "admit", "one")).admitted
    assert (await limiter.decide(key, "admit", "two")).admitted
    refused = await limiter.decide(key, "admit", "three")
    assert refused.refusing_window().name == "concurrent"
    assert refused.refusing_window().next_admission_ms == ms(clock) + 1_000
    assert (await limiter.decide(principal(concurrent=2), "admit", "other-key")).admitted  # per key
    await limiter.give_back(key, "one")  # a refusal of ours: uncounted, and its slot is free
    decision = await limiter.decide(key, "admit", "four")
    assert decision.admitted
    assert decision.windows[0].used == 2


async def test_a_slot_whose_process_died_frees_itself_when_its_lease_ends(limiter, clock, settings):
    settings.GATEWAY_CONCURRENCY_LEASE_SECONDS = 30
    key = principal(concurrent=1)
    assert (await limiter.decide(key, "admit", "held-by-a-dead-process")).admitted
    assert not (await limiter.decide(key, "admit", "waiting")).admitted
    clock.advance(30_000)
    assert (await limiter.decide(key, "admit", "after-the-lease")).admitted


async def test_give_back_returns_the_request_to_the_account_too(limiter):
    key = principal(per_minute=1, max_keys=1)
    await limiter.decide(key, "admit", "lost")
    after = await limiter.give_back(key, "lost")
    assert [window.used for window in (*after.windows, *after.account_windows)] == [0, 0, 0, 0, 0, 0]
    sibling = principal(per_minute=1, max_keys=1, user_id=key.user_id)
    assert (await limiter.decide(sibling, "admit", "next")).admitted


async def test_backfill_adds_unchecked_admissions_to_the_long_windows(limiter):
    key = principal(per_5_hours=10, max_keys=1)
    await limiter.backfill(key, 7)
    decision = await limiter.decide(key, "peek", "")
    assert [window.used for window in decision.windows] == [0, 7, 7]  # the minute has long passed
    assert [window.used for window in decision.account_windows] == [0, 7, 7]
    await admit_n(limiter, key, 3)
    assert (await limiter.decide(key, "admit", "eleventh")).refusing_window().name in {"5h", "account-5h"}


async def test_a_thousand_simultaneous_decisions_share_a_few_connections_and_stay_exact(settings):
    settings.GATEWAY_LIMITER_CONNECTIONS = 2
    chosen = FailOpenLimiter(RedisLimiter(limiter_scripts()))
    try:
        key = principal(per_minute=100)
        decisions = await asyncio.gather(*(chosen.decide(key, "admit", f"burst-{index}") for index in range(1000)))
    finally:
        await chosen.close()
    assert chosen.failures == 0  # no decision was left unanswered for want of a connection
    assert sum(decision.admitted for decision in decisions) == 100


async def test_admissions_while_redis_is_away_reach_the_long_windows_once_it_is_back():
    private_redis = RedisServer().start()
    chosen = FailOpenLimiter(RedisLimiter(limiter_scripts(private_redis.url)))
    key = principal(per_minute=2, max_keys=1)
    try:
        assert (await chosen.decide(key, "admit", "before")).admitted
        private_redis.stop()
        for index in range(5):
            decision = await chosen.decide(key, "admit", f"away-{index}")
            assert decision.admitted
            assert not decision.windows  # nothing true to say
        assert chosen.unrecorded_admissions == 5
        private_redis.start()  # empty: it keeps nothing on disk
        assert await long_windows_reach(chosen, key, [0, 5, 5])
        assert chosen.unrecorded_admissions == 0
    finally:
        await chosen.close()
        private_redis.stop()


async def long_windows_reach(chosen: FailOpenLimiter, key: KeyPrincipal, used: list[int]) -> bool:
    """Peek until the key's windows show `used`: the circuit lets a probe through each second,
    and the first answered decision starts the backfill."""
    for _ in range(200):
        windows = (await chosen.decide(key, "peek", "")).windows
        if [window.used for window in windows] == used:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_released_slot_is_free_for_the_keys_next_request(limiter):
    key = principal(concurrent=1)
    assert (await limiter.decide(key, "admit", "first")).admitted
    limiter.release(key, "first")  # no round trip: the next decision of the key frees it
    decision = await limiter.decide(key, "admit", "second")
    assert decision.admitted
    assert decision.concurrent.used == 1


async def test_input_tokens_are_estimated_at_admission_and_drain_at_the_limit_per_minute(limiter, clock):
    key = principal(input_tokens=1_000, output_tokens=500)
    first = await limiter.decide(key, "admit", "a", input_estimate=600)
    assert [(window.name, window.used, window.remaining) for window in first.tokens] == [
        ("input-tokens", 600, 400),
        ("output-tokens", 0, 500),
    ]
    assert first.tokens[0].reset_at_ms == ms(clock) + 36_000  # 600 of 1,000 a minute drain in 36 s
    assert (await limiter.decide(key, "admit", "b", input_estimate=600)).admitted  # under the limit: admitted
    refused = await limiter.decide(key, "admit", "c", input_estimate=1)
    assert refused.refusing_window().name == "input-tokens"
    assert refused.refusing_window().used == 1_200
    # 200 tokens over: 12 s at 1,000 a minute, then it admits again.
    assert refused.refusing_window().next_admission_ms == ms(clock) + 12_001
    clock.advance(12_000)
    assert not (await limiter.decide(key, "admit", "d", input_estimate=1)).admitted
    clock.advance(1)
    assert (await limiter.decide(key, "admit", "e", input_estimate=1)).admitted


async def test_the_answer_corrects_the_estimate_and_adds_its_output(limiter, clock):
    key = principal(input_tokens=10_000, output_tokens=1_000)
    await limiter.decide(key, "admit", "a", input_estimate=9_000)
    await limiter.charge(token_charge(key, 300 - 9_000, 1_200))  # counted 300 input tokens, answered 1,200
    decision = await limiter.decide(key, "peek", "")
    assert [(window.name, window.used) for window in decision.tokens] == [
        ("input-tokens", 300),
        ("output-tokens", 1_200),
    ]
    refused = await limiter.decide(key, "admit", "b", input_estimate=10)
    assert refused.refusing_window().name == "output-tokens"
    assert refused.refusing_window().next_admission_ms == ms(clock) + 12_001
    await limiter.charge(token_charge(key, -10_000, 0))  # a correction never takes a level below zero
    assert (await limiter.decide(key, "peek", "")).tokens[0].used == 0


async def test_the_account_holds_max_keys_times_the_token_limits(limiter):
    first = principal(input_tokens=1_000, max_keys=2)
    sibling = principal(input_tokens=1_000, max_keys=2, user_id=first.user_id)
    third = principal(input_tokens=1_000, max_keys=2, user_id=first.user_id)
    assert (await limiter.decide(first, "admit", "a", input_estimate=1_000)).admitted
    assert (await limiter.decide(sibling, "admit", "b", input_estimate=1_000)).admitted
    refused = await limiter.decide(third, "admit", "c", input_estimate=1)
    assert refused.refusing_window().name == "account-input-tokens"
    assert refused.binding_token_windows()[0].name == "account-input-tokens"
    assert refused.tokens[0].used == 0  # the new key's own bucket is empty


async def test_without_token_limits_no_token_window_is_kept(limiter):
    key = principal()
    decision = await limiter.decide(key, "admit", "a", input_estimate=10**9)
    assert decision.admitted
    assert (decision.tokens, decision.account_tokens) == ((), ())
    await limiter.charge(token_charge(key, 10**9, 10**9))
    assert (await limiter.decide(key, "admit", "b")).admitted
