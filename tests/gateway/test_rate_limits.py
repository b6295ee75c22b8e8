"""Plan limits at the live gateway: headers, 429s, what counts, several processes, Redis outages."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from plans.models import Plan
from tests.gateway.conftest import move_to_new_plan
from tests.helpers import wait_until
from tests.servers import RedisServer, gateway_process

HELLO = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "Hello"}]}


def put_on_plan(gateway, slug: str) -> None:
    gateway.user.plan = Plan.objects.get(slug=slug)
    gateway.user.save()  # published: every gateway process drops the key's cached limits


def post(base_url: str, key: str, body: dict | None = None) -> httpx.Response:
    return httpx.post(base_url + "/v1/messages", json=body or HELLO, headers={"x-api-key": key})


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_headers_count_down_then_429_names_the_window(gateway):
    put_on_plan(gateway, "free")
    remaining = []
    for _ in range(10):
        response = post(gateway.base_url, gateway.key)
        assert response.status_code == 200
        remaining.append(int(response.headers["anthropic-ratelimit-requests-remaining"]))
        assert response.headers["x-ratelimit-remaining"] == response.headers["anthropic-ratelimit-requests-remaining"]
        assert response.headers["anthropic-ratelimit-requests-limit"] == "10"
        assert response.headers["llmapi-ratelimit-requests-5h-limit"] == "40"
        assert response.headers["llmapi-ratelimit-requests-week-limit"] == "200"
    assert remaining == list(range(9, -1, -1))

    refused = post(gateway.base_url, gateway.key)
    assert refused.status_code == 429
    body = refused.json()
    assert body["error"]["type"] == "rate_limit_error"
    assert "Free plan allows 10 requests per minute" in body["error"]["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert "x-should-retry" not in refused.headers
    assert refused.headers["anthropic-ratelimit-requests-remaining"] == "0"
    reset = parse_time(refused.headers["anthropic-ratelimit-requests-reset"])
    assert datetime.now(UTC) < reset <= datetime.now(UTC) + timedelta(seconds=61)
    assert refused.headers["llmapi-ratelimit-requests-5h-remaining"] == "30"


def test_the_sdk_sees_rate_limit_error_with_retry_after(gateway, anthropic_errors):
    put_on_plan(gateway, "free")
    client = gateway.client()
    for _ in range(10):
        client.messages.create(**HELLO)
    with pytest.raises(anthropic_errors.RateLimitError) as caught:
        client.messages.create(**HELLO)
    assert int(caught.value.response.headers["retry-after"]) >= 1


def test_a_long_window_429_tells_sdks_not_to_retry(gateway, anthropic_errors):
    Plan.objects.filter(slug="free").update(requests_per_5_hours=2)
    put_on_plan(gateway, "free")
    client = gateway.client(max_retries=2)  # would sleep for hours if it retried
    client.messages.create(**HELLO)
    client.messages.create(**HELLO)
    with pytest.raises(anthropic_errors.RateLimitError) as caught:
        client.messages.create(**HELLO)
    headers = caught.value.response.headers
    assert headers["x-should-retry"] == "false"
    assert 5 * 3600 - 60 <= int(headers["retry-after"]) <= 5 * 3600
    assert "per 5 hours" in caught.value.body["error"]["message"]
    assert len(gateway.simulator.requests()) == 2


def test_an_upgrade_lifts_a_429_at_once(gateway):
    put_on_plan(gateway, "free")
    for _ in range(10):
        post(gateway.base_url, gateway.key)
    assert post(gateway.base_url, gateway.key).status_code == 429
    put_on_plan(gateway, "pro")
    response = post(gateway.base_url, gateway.key)
    assert response.status_code == 200
    assert response.headers["anthropic-ratelimit-requests-limit"] == "20"
    assert response.headers["anthropic-ratelimit-requests-remaining"] == "9"


def test_a_plan_edit_applies_to_the_next_request(gateway):
    put_on_plan(gateway, "free")
    post(gateway.base_url, gateway.key)
    free = Plan.objects.get(slug="free")
    free.requests_per_minute = 3
    free.save()
    response = post(gateway.base_url, gateway.key)
    assert response.headers["anthropic-ratelimit-requests-limit"] == "3"
    assert response.headers["anthropic-ratelimit-requests-remaining"] == "1"


def test_refusals_of_the_gateway_do_not_count_but_show_the_windows(gateway):
    put_on_plan(gateway, "free")
    bad_body = post(gateway.base_url, gateway.key, {"model": "claude-sonnet-4-6"})
    unknown_model = post(gateway.base_url, gateway.key, {**HELLO, "model": "gpt-4o"})
    for response in (bad_body, unknown_model):
        assert response.status_code in {400, 404}
        assert response.headers["anthropic-ratelimit-requests-remaining"] == "10"
    assert post(gateway.base_url, gateway.key).headers["anthropic-ratelimit-requests-remaining"] == "9"


@pytest.mark.parametrize(("upstream_status", "client_status"), [(0, 503), (500, 500)])
def test_a_request_no_backend_could_answer_is_given_back(gateway, upstream_status, client_status):
    put_on_plan(gateway, "free")
    gateway.simulator.fail_next(upstream_status, count=5)  # 0: the connection drops
    outage = post(gateway.base_url, gateway.key)
    assert outage.status_code == client_status
    assert outage.headers["anthropic-ratelimit-requests-remaining"] == "10"  # the windows without it
    gateway.simulator.reset()  # the backend is well again
    assert post(gateway.base_url, gateway.key).headers["anthropic-ratelimit-requests-remaining"] == "9"


def test_count_tokens_and_models_use_their_own_guard(gateway):
    put_on_plan(gateway, "free")  # guard: 100 per minute
    headers = {"x-api-key": gateway.key}
    for _ in range(12):
        assert httpx.get(gateway.base_url + "/v1/models", headers=headers).status_code == 200
    assert post(gateway.base_url, gateway.key).headers["anthropic-ratelimit-requests-remaining"] == "9"


async def post_concurrently(bases: list[str], key: str, count: int) -> list[httpx.Response]:
    headers = {"x-api-key": key}
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=count)) as client:
        requests = (
            client.post(bases[i % len(bases)] + "/v1/messages", json=HELLO, headers=headers) for i in range(count)
        )
        return await asyncio.gather(*requests)


def test_two_processes_admit_exactly_the_limit_of_200_concurrent_requests(gateway):
    Plan.objects.filter(slug="free").update(concurrent_requests_per_key=1000)  # the minute is measured here
    put_on_plan(gateway, "free")
    with gateway_process() as other_base_url:
        responses = asyncio.run(post_concurrently([gateway.base_url, other_base_url], gateway.key, 200))
    statuses = [response.status_code for response in responses]
    assert statuses.count(200) == 10
    assert statuses.count(429) == 190
    for response in responses:
        if response.status_code == 429:
            assert response.headers["anthropic-ratelimit-requests-remaining"] == "0"
            assert response.json()["error"]["type"] == "rate_limit_error"
            assert 1 <= int(response.headers["retry-after"]) <= 60
    assert len(gateway.simulator.requests()) == 10


def test_requests_keep_succeeding_while_redis_is_down_and_limits_resume(gateway):
    put_on_plan(gateway, "free")
    private_redis = RedisServer().start()
    try:
        with gateway_process(REDIS_URL=private_redis.url) as base_url:
            for _ in range(10):
                assert post(base_url, gateway.key).status_code == 200
            assert post(base_url, gateway.key).status_code == 429

            private_redis.stop()  # Redis goes away mid-run
            for _ in range(15):
                response = post(base_url, gateway.key)
                assert response.status_code == 200  # fail open: nobody is refused because Redis blinked
                assert "anthropic-ratelimit-requests-limit" not in response.headers

            private_redis.start()  # back, and empty: it keeps nothing on disk
            wait_until(lambda: "anthropic-ratelimit-requests-limit" in post(base_url, gateway.key).headers)
            statuses = [post(base_url, gateway.key).status_code for _ in range(12)]
            assert 429 in statuses  # limits apply again
    finally:
        private_redis.stop()


def test_dashboard_selector_reads_the_windows_without_counting(gateway):
    from gateway.selectors import api_key_window_usage
    from keys.models import ApiKey

    put_on_plan(gateway, "free")
    for _ in range(3):
        post(gateway.base_url, gateway.key)
    api_key = ApiKey.objects.get()
    for _ in range(2):  # reading twice changes nothing
        windows = api_key_window_usage(api_key=api_key)
    assert [(window.name, window.limit, window.used, window.remaining) for window in windows[:3]] == [
        ("minute", 10, 3, 7),
        ("5h", 40, 3, 37),
        ("week", 200, 3, 197),
    ]
    assert [(window.name, window.limit) for window in windows[3:]] == [
        ("input-tokens", 200_000),
        ("output-tokens", 40_000),
    ]
    assert windows[1].resets_at > datetime.now(UTC) + timedelta(hours=4, minutes=59)


def unified(response: httpx.Response) -> dict[str, str]:
    prefix = "anthropic-ratelimit-unified-"
    return {name.removeprefix(prefix): value for name, value in response.headers.items() if name.startswith(prefix)}


def test_unified_headers_follow_the_5_hour_and_weekly_windows(gateway):
    move_to_new_plan(gateway, "five-a-session", requests_per_minute=100, requests_per_5_hours=5, requests_per_week=50)
    seen = [unified(post(gateway.base_url, gateway.key)) for _ in range(5)]
    assert [headers["5h-utilization"] for headers in seen] == ["0.20", "0.40", "0.60", "0.80", "1.00"]
    assert [headers["7d-utilization"] for headers in seen] == ["0.02", "0.04", "0.06", "0.08", "0.10"]
    assert [headers["status"] for headers in seen] == ["allowed"] * 3 + ["allowed_warning"] * 2
    assert {headers["representative-claim"] for headers in seen} == {"five_hour"}
    five_hour_reset = int(seen[0]["5h-reset"])
    assert time.time() < five_hour_reset <= time.time() + 5 * 3600 + 1
    assert seen[0]["reset"] == seen[0]["5h-reset"]
    assert time.time() + 6 * 24 * 3600 < int(seen[0]["7d-reset"]) <= time.time() + 7 * 24 * 3600 + 1

    refused = post(gateway.base_url, gateway.key)
    assert refused.status_code == 429
    assert refused.headers["x-should-retry"] == "false"
    headers = unified(refused)
    assert (headers["status"], headers["5h-status"], headers["7d-status"]) == ("rejected", "rejected", "allowed")
    assert (headers["representative-claim"], headers["reset"]) == ("five_hour", seen[0]["5h-reset"])


def test_a_refusal_by_the_minute_window_is_no_unified_rejection(gateway):
    move_to_new_plan(gateway, "two-a-minute", requests_per_minute=2, requests_per_5_hours=100, requests_per_week=100)
    for _ in range(2):
        assert post(gateway.base_url, gateway.key).status_code == 200
    refused = post(gateway.base_url, gateway.key)
    assert refused.status_code == 429
    assert unified(refused)["status"] == "allowed"  # Claude Code retries a minute's refusal; not a session limit
