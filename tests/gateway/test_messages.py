"""POST /v1/messages through the live gateway, with the official anthropic SDK as the client."""

from __future__ import annotations

import httpx
import orjson
import pytest

from gateway.models import ModelRoute, RouteTarget, Upstream
from gateway.simulator import THINKING_SIGNATURE, TOOL_INPUT
from gateway.usage.writer import usage_writer
from tests.helpers import wait_until

HELLO = [{"role": "user", "content": "Hello"}]


def usage_record(request_id: str):
    """The usage record of a request; it is emitted just after the response ends."""
    wait_until(lambda: usage_writer.find(request_id) is not None, timeout=5)
    return usage_writer.find(request_id)


def test_non_stream_message(gateway):
    response = gateway.client().messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=100, messages=HELLO
    )
    message = response.parse()
    assert message.content[0].text == "Hello from the simulator."
    assert message.model == "claude-sonnet-4-6"
    assert message.usage.input_tokens == 1
    assert message.usage.output_tokens == 4
    request_id = response.headers["request-id"]
    assert request_id.startswith("req_")
    record = usage_record(request_id)
    assert (record.status, record.upstream, record.stream) == (200, "sim", False)
    assert (record.input_tokens, record.output_tokens) == (1, 4)


def test_stream_text_and_usage(gateway):
    with gateway.client().messages.stream(model="claude-opus-5-5", max_tokens=100, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        message = stream.get_final_message()
        request_id = stream.response.headers["request-id"]
    assert text == "Hello from the simulator."
    assert message.model == "claude-opus-5-5"
    assert message.stop_reason == "end_turn"
    record = usage_record(request_id)
    assert (record.status, record.stream, record.requested_model) == (200, True, "claude-opus-5-5")
    assert (record.input_tokens, record.output_tokens) == (1, 4)
    assert record.time_to_first_token_ms is not None


def test_stream_tool_use_input_is_parsed(gateway):
    with gateway.client().messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=100,
        messages=[{"role": "user", "content": "scenario:tool_use weather in Paris?"}],
        tools=[{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}],
    ) as stream:
        message = stream.get_final_message()
    tool_use = message.content[0]
    assert tool_use.type == "tool_use"
    assert tool_use.name == "get_weather"
    assert tool_use.input == TOOL_INPUT
    assert message.stop_reason == "tool_use"


def test_earlier_thinking_blocks_reach_the_upstream_byte_for_byte(gateway):
    body = orjson.dumps(
        {
            "model": "claude-sonnet-4-6",
            "max_tokens": 100,
            "messages": [
                {"role": "user", "content": "Hi"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "Hmm \u00e9\u4e2d", "signature": THINKING_SIGNATURE},
                        {"type": "redacted_thinking", "data": "EnAbCdEf=="},
                        {"type": "text", "text": "Hello"},
                    ],
                },
                {"role": "user", "content": "Again"},
            ],
        }
    )
    # Spacing the SDK would never produce: a re-encoding gateway would change these bytes.
    body = body.replace(b'"max_tokens":100', b'"max_tokens" :  100')
    response = httpx.post(
        gateway.base_url + "/v1/messages",
        content=body,
        headers={"x-api-key": gateway.key, "content-type": "application/json"},
    )
    assert response.status_code == 200
    assert gateway.simulator.requests()[-1]["body"].encode() == body


def test_query_string_unknown_fields_and_betas_reach_the_upstream(gateway):
    gateway.client().messages.create(
        model="claude-sonnet-4-6",
        max_tokens=10,
        messages=HELLO,
        extra_query={"beta": "true"},
        extra_body={"a_field_from_the_future": {"nested": [1, 2]}},
        extra_headers={
            "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
            "x-claude-code-session-id": "session-42",
        },
    )
    upstream_request = gateway.simulator.requests()[-1]
    assert upstream_request["path"] == "/v1/messages"
    assert upstream_request["query_string"] == "beta=true"
    assert orjson.loads(upstream_request["body"])["a_field_from_the_future"] == {"nested": [1, 2]}
    headers = upstream_request["headers"]
    assert headers["anthropic-beta"] == "claude-code-20250219,interleaved-thinking-2025-05-14"
    assert headers["x-claude-code-session-id"] == "session-42"
    assert headers["x-api-key"] == "sk-ant-sim-primary"
    assert gateway.key not in str(headers)
    assert "authorization" not in headers


def test_the_addresses_a_reverse_proxy_adds_never_reach_the_upstream(gateway):
    proxy_headers = {
        "x-forwarded-for": "203.0.113.7, 10.0.0.5",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "api.example.com",
        "x-real-ip": "203.0.113.7",
        "forwarded": "for=203.0.113.7;proto=https",
        "via": "1.1 edge",
    }
    response = httpx.post(
        gateway.base_url + "/v1/messages",
        json={"model": "claude-haiku-4-5", "max_tokens": 10, "messages": HELLO},
        headers={"x-api-key": gateway.key, **proxy_headers},
    )
    assert response.status_code == 200
    forwarded = gateway.simulator.requests()[-1]["headers"]
    assert [name for name in proxy_headers if name in forwarded] == []
    assert "203.0.113.7" not in str(forwarded)


def test_bearer_auth_and_default_anthropic_version(gateway):
    response = httpx.post(
        gateway.base_url + "/v1/messages",
        json={"model": "claude-haiku-4-5", "max_tokens": 10, "messages": HELLO},
        headers={"authorization": f"Bearer {gateway.key}"},
    )
    assert response.status_code == 200
    assert gateway.simulator.requests()[-1]["headers"]["anthropic-version"] == "2023-06-01"


def test_upstream_rate_limit_and_organisation_headers_are_not_passed_on(gateway):
    response = gateway.client().messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=10, messages=HELLO
    )
    names = {name.lower() for name in response.headers}
    assert "anthropic-organization-id" not in names
    assert response.headers["anthropic-ratelimit-requests-limit"] == "120"  # the plan's, not the backend's
    # Ours (Max 20x: 1,600,000 input tokens a minute, the tighter one with this request's estimate), not the backend's.
    assert response.headers["anthropic-ratelimit-tokens-limit"] == "1600000"
    assert response.headers["anthropic-ratelimit-output-tokens-limit"] == "320000"
    assert not response.headers["request-id"].startswith("req_sim_")


def test_a_renamed_target_still_shows_the_requested_model(gateway):
    upstream = Upstream.objects.get(name="sim")
    route = ModelRoute.objects.create(pattern="claude-renamed-1")
    RouteTarget.objects.create(route=route, upstream=upstream, upstream_model="claude-internal-name")
    client = gateway.client()

    message = client.messages.create(model="claude-renamed-1", max_tokens=10, messages=HELLO)
    assert message.model == "claude-renamed-1"
    assert orjson.loads(gateway.simulator.requests()[-1]["body"])["model"] == "claude-internal-name"

    with client.messages.stream(model="claude-renamed-1", max_tokens=10, messages=HELLO) as stream:
        events = list(stream)
    assert events[0].type == "message_start"
    assert events[0].message.model == "claude-renamed-1"


def test_upstream_client_errors_pass_through_verbatim(gateway, anthropic_errors):
    with pytest.raises(anthropic_errors.BadRequestError) as caught:
        gateway.client().messages.create(
            model="claude-sonnet-4-6",
            max_tokens=10,
            messages=[{"role": "user", "content": "scenario:bad_request"}],
        )
    assert "prompt is too long: 300000 tokens > 200000 maximum" in str(caught.value)
    assert len(gateway.simulator.requests()) == 1  # a client fault is never retried
