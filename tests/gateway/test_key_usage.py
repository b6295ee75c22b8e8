"""GET /llmapi/usage: a key's plan, windows and tokens today, asked with the key itself (issue 15)."""

from __future__ import annotations

import httpx

from gateway.usage.writer import usage_writer
from keys import keyformat
from tests.gateway.conftest import move_to_new_plan
from tests.gateway.test_hot_path_costs import database_queries  # noqa: F401 - a fixture used below
from tests.helpers import wait_until
from tests.servers import gateway_process

HELLO = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "Hello there"}]}
TOKEN_NAMES = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def send_messages(base_url: str, key: str, count: int) -> dict[str, int]:
    """`count` messages; the tokens their answers reported, summed."""
    sums = dict.fromkeys(TOKEN_NAMES, 0)
    for _ in range(count):
        response = httpx.post(base_url + "/v1/messages", json=HELLO, headers={"x-api-key": key})
        assert response.status_code == 200
        for name in TOKEN_NAMES:
            sums[name] += response.json()["usage"].get(name) or 0
    return sums


def key_usage(base_url: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(base_url + "/llmapi/usage", headers=headers)


def test_the_key_sees_its_plan_windows_and_tokens_and_asking_costs_it_nothing(gateway):
    move_to_new_plan(gateway, "starter", requests_per_minute=20, requests_per_5_hours=100, requests_per_week=500)
    tokens = send_messages(gateway.base_url, gateway.key, 3)
    wait_until(lambda: usage_writer.pending == 0)

    for _ in range(5):  # asking is not a request against the windows
        report = key_usage(gateway.base_url, {"x-api-key": gateway.key})
        assert report.status_code == 200
    body = report.json()
    assert body["type"] == "key_usage"
    assert body["plan"] == {"slug": "starter", "name": "Starter"}
    assert {name: window["used"] for name, window in body["windows"].items()} == {"minute": 3, "5h": 3, "week": 3}
    assert {name: window["limit"] for name, window in body["windows"].items()} == {"minute": 20, "5h": 100, "week": 500}
    assert body["windows"]["5h"]["remaining"] == 97
    assert body["windows"]["5h"]["resets_at"].endswith("Z")
    assert body["tokens_today"] == tokens
    assert tokens["input_tokens"] > 0
    assert tokens["output_tokens"] > 0
    assert report.headers["anthropic-ratelimit-unified-5h-utilization"] == "0.03"


def test_a_bearer_key_works_and_a_bad_key_is_refused_in_anthropics_shape(gateway):
    assert key_usage(gateway.base_url, {"authorization": f"Bearer {gateway.key}"}).status_code == 200
    refused = key_usage(gateway.base_url, {"x-api-key": keyformat.generate_key()})
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "authentication_error"
    assert key_usage(gateway.base_url, {}).status_code == 401
    assert httpx.post(gateway.base_url + "/llmapi/usage", headers={"x-api-key": gateway.key}).status_code == 405


def test_a_warm_call_makes_no_database_query(gateway, database_queries):  # noqa: F811
    send_messages(gateway.base_url, gateway.key, 1)
    wait_until(lambda: usage_writer.pending == 0)
    assert key_usage(gateway.base_url, {"x-api-key": gateway.key}).status_code == 200  # warms the caches
    database_queries.count = 0
    assert key_usage(gateway.base_url, {"x-api-key": gateway.key}).status_code == 200
    assert database_queries.count == 0


def test_in_embedded_mode_the_tokens_come_from_the_rollups(gateway):
    with gateway_process(REDIS_URL="") as base_url:
        tokens = send_messages(base_url, gateway.key, 2)

        def reported() -> dict[str, int]:
            return key_usage(base_url, {"x-api-key": gateway.key}).json()["tokens_today"]

        wait_until(lambda: reported() == tokens)
        assert key_usage(base_url, {"x-api-key": gateway.key}).json()["windows"]["5h"]["used"] == 2
