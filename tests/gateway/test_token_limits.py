"""Tokens per minute at the live gateway: the headers, the estimate and its correction, the 429 (issue 15)."""

from __future__ import annotations

import math
import time

import httpx
import pytest

from gateway.tokens import CHARACTERS_PER_TOKEN
from plans.models import Plan
from tests.gateway.conftest import move_to_new_plan
from tests.helpers import wait_until

MODEL = "claude-sonnet-4-6"


def prompt(characters: int) -> dict:
    """A message whose text the simulator counts as characters // 4 input tokens."""
    return {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "x" * characters}]}


def post(gateway, body: dict) -> httpx.Response:
    return httpx.post(gateway.base_url + "/v1/messages", json=body, headers={"x-api-key": gateway.key})


def estimate_of(response: httpx.Response) -> int:
    """What the gateway charged at admission: the body's length over CHARACTERS_PER_TOKEN."""
    return math.ceil(len(response.request.content) / CHARACTERS_PER_TOKEN)


def used(response: httpx.Response, window: str) -> int:
    headers = response.headers
    return int(headers[f"anthropic-ratelimit-{window}-limit"]) - int(headers[f"anthropic-ratelimit-{window}-remaining"])


def token_windows(gateway) -> dict[str, dict]:
    """The key's windows as its usage endpoint shows them (the token ones among them)."""
    return httpx.get(gateway.base_url + "/llmapi/usage", headers={"x-api-key": gateway.key}).json()["windows"]


def test_token_headers_show_the_estimate_then_the_tokens_the_answer_used(gateway):
    # 6,000 input tokens a minute drain 0.1 a millisecond, 3,000 output tokens 0.05.
    move_to_new_plan(
        gateway,
        "tokens",
        requests_per_minute=100,
        requests_per_5_hours=1_000,
        requests_per_week=1_000,
        input_tokens_per_minute=6_000,
        output_tokens_per_minute=3_000,
    )
    began = time.monotonic()
    first = post(gateway, prompt(4_000))
    assert first.status_code == 200
    estimate = estimate_of(first)
    assert first.headers["anthropic-ratelimit-input-tokens-limit"] == "6000"
    assert used(first, "input-tokens") == estimate  # charged at admission, before the answer
    assert used(first, "output-tokens") == 0
    assert first.headers["anthropic-ratelimit-output-tokens-limit"] == "3000"
    # The tokens-* headers show the more restrictive of the two: here input, with less of it left.
    assert first.headers["anthropic-ratelimit-tokens-limit"] == "6000"
    assert used(first, "tokens") == estimate
    assert first.headers["anthropic-ratelimit-input-tokens-reset"].endswith("Z")

    counted_input = first.json()["usage"]["input_tokens"]  # 1,000: fewer than the estimate
    output = first.json()["usage"]["output_tokens"]
    assert counted_input < estimate
    # The correction travels after the answer; the key's usage endpoint shows when it has landed.
    wait_until(lambda: token_windows(gateway)["input_tokens"]["used"] <= counted_input)

    second = post(gateway, prompt(4_000))
    elapsed_ms = (time.monotonic() - began) * 1000
    assert second.status_code == 200
    input_now = counted_input + estimate_of(second)
    assert input_now - 0.1 * elapsed_ms - 1 <= used(second, "input-tokens") <= input_now
    assert output - 0.05 * elapsed_ms - 1 <= used(second, "output-tokens") <= output


def test_a_plan_without_token_limits_sends_no_token_headers(gateway):
    move_to_new_plan(gateway, "requests-only", requests_per_minute=10, requests_per_5_hours=10, requests_per_week=10)
    response = post(gateway, prompt(100))
    assert response.status_code == 200
    assert not [name for name in response.headers if "tokens" in name]
    assert "input_tokens" not in token_windows(gateway)


def test_a_large_prompt_fills_the_input_window_and_the_next_request_is_refused_naming_it(gateway, anthropic_errors):
    move_to_new_plan(
        gateway,
        "small-input",
        requests_per_minute=100,
        requests_per_5_hours=1_000,
        requests_per_week=1_000,
        input_tokens_per_minute=1_000,
    )
    big = post(gateway, prompt(8_000))  # 2,000 input tokens: admitted, since the window was not full
    assert big.status_code == 200
    assert big.headers["anthropic-ratelimit-input-tokens-remaining"] == "0"  # the estimate alone fills it
    assert "anthropic-ratelimit-output-tokens-limit" not in big.headers  # no output limit on this plan

    refused = post(gateway, prompt(10))
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error"
    assert "plan allows 1,000 input tokens per minute" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 61
    assert "x-should-retry" not in refused.headers  # a minute window: SDKs may wait it out
    assert refused.headers["anthropic-ratelimit-input-tokens-remaining"] == "0"

    with pytest.raises(anthropic_errors.RateLimitError):
        gateway.client().messages.create(**prompt(10))


def test_output_tokens_are_charged_after_the_answer_and_refuse_once_the_window_is_full(gateway):
    move_to_new_plan(
        gateway,
        "small-output",
        requests_per_minute=100,
        requests_per_5_hours=1_000,
        requests_per_week=1_000,
        output_tokens_per_minute=3,
    )
    first = post(gateway, prompt(100))
    assert first.status_code == 200
    assert first.json()["usage"]["output_tokens"] >= 3  # the simulator's answer: more than the window holds
    wait_until(lambda: token_windows(gateway)["output_tokens"]["used"] >= 3)
    refused = post(gateway, prompt(100))
    assert refused.status_code == 429
    assert "3 output tokens per minute" in refused.json()["error"]["message"]


def test_the_seeded_plans_have_token_limits(db):
    limits = {plan.slug: (plan.input_tokens_per_minute, plan.output_tokens_per_minute) for plan in Plan.objects.all()}
    assert limits["free"] == (200_000, 40_000)
    assert limits["max-20x"] == (1_600_000, 320_000)


def test_a_token_window_redis_cannot_read_never_costs_a_usage_record_twice(gateway, stream_client):
    """A key's token levels overwritten with a value of the wrong type: both scripts fail on it.
    The request is served (the limiter fails open), and its record is written once, not retried."""
    from gateway.redis_keys import key_token_window_key, usage_stream_key
    from gateway.usage.clean import RECORD_FIELD
    from gateway.usage.writer import usage_writer
    from keys.models import ApiKey

    api_key = ApiKey.objects.get(user=gateway.user)
    stream_client.set(key_token_window_key(user_id=gateway.user.pk, key_id=api_key.pk), "not a hash")
    response = post(gateway, prompt(100))
    assert response.status_code == 200
    wait_until(lambda: usage_writer.pending == 0)
    records = [
        fields[RECORD_FIELD] for _, fields in stream_client.xrange(usage_stream_key(0)) if RECORD_FIELD in fields
    ]
    assert [b'"' + response.headers["request-id"].encode() + b'"' in record for record in records] == [True]
