"""The Anthropic upstream simulator, driven by the official SDK and by raw HTTP.

The gateway's own tests trust the simulator to be wire-exact, so these tests hold it to the
contract in anthropic-wire.md: the SDK must parse every answer, and the raw bytes must follow
the SSE framing clients insist on.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import orjson
import pytest

from gateway.simulator import THINKING_SIGNATURE, SimulatorThread
from tests.helpers import PROJECT_DIR, free_port, stop_process, wait_until

MODEL = "claude-sonnet-4-6"
HELLO = [{"role": "user", "content": "Hello"}]
API_HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}


@pytest.fixture
def client(simulator: SimulatorThread) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=simulator.base_url, api_key="sk-ant-test", max_retries=0) as sdk:
        yield sdk


def post(simulator: SimulatorThread, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    """A raw POST /v1/messages; bytes are sent as they are, anything else as JSON."""
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(f"{simulator.base_url}/v1/messages", content=content, headers={**API_HEADERS, **(headers or {})})


def sse_events(raw: str) -> list[dict[str, Any]]:
    """Parse an SSE body strictly: every event is exactly `event: NAME\\ndata: JSON\\n\\n`."""
    assert raw.endswith("\n\n")
    events = []
    for chunk in raw.removesuffix("\n\n").split("\n\n"):
        name_line, data_line = chunk.split("\n")
        data = orjson.loads(data_line.removeprefix("data: "))
        assert name_line == f"event: {data['type']}"
        events.append(data)
    return events


def stream_body(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 100, "messages": HELLO, "stream": True, **extra}


def test_text_message(client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=100, messages=HELLO)
    message = raw.parse()

    assert message.id.startswith("msg_sim_")
    assert message.model == MODEL  # echoed from the request
    assert message.content[0].text == "Hello from the simulator."
    assert message.stop_reason == "end_turn"
    # "Hello" is 5 characters -> 1 input token; four word pieces -> 4 output tokens.
    assert message.usage.model_dump(include={"input_tokens", "output_tokens"}) == {
        "input_tokens": 1,
        "output_tokens": 4,
    }
    assert message.usage.cache_creation_input_tokens == message.usage.cache_read_input_tokens == 0
    # The upstream-only headers the gateway has to strip must be there to be stripped.
    assert raw.headers["request-id"].startswith("req_sim_")
    assert raw.headers["anthropic-ratelimit-requests-limit"] == "4000"
    assert raw.headers["anthropic-organization-id"] == "sim-org"


def test_text_stream_with_the_sdk(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream:
        pieces = list(stream.text_stream)
        message = stream.get_final_message()

    assert pieces == ["Hello ", "from ", "the ", "simulator."]
    assert message.content[0].text == "Hello from the simulator."
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (1, 4)


def test_stream_wire_format(simulator: SimulatorThread) -> None:
    response = post(simulator, stream_body())

    assert response.headers["content-type"] == "text/event-stream"
    events = sse_events(response.text)
    assert [event["type"] for event in events] == [
        "message_start",
        "ping",
        "content_block_start",
        *["content_block_delta"] * 4,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0]["message"]["usage"] == {
        "input_tokens": 1,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 1,  # message_start's output count is a placeholder, as upstream
    }
    assert events[-2]["usage"]["output_tokens"] == 4
    assert events[-2]["usage"]["input_tokens"] == 1


def test_tool_use_input_arrives_in_pieces(client: anthropic.Anthropic) -> None:
    prompt = [{"role": "user", "content": "scenario:tool_use what is the weather?"}]
    with client.messages.stream(model=MODEL, max_tokens=100, messages=prompt) as stream:
        json_pieces = [
            event.delta.partial_json
            for event in stream
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta"
        ]
        message = stream.get_final_message()

    assert len(json_pieces) >= 3
    block = message.content[0]
    assert block.type == "tool_use"
    assert block.id.startswith("toolu_sim_")
    assert block.name == "get_weather"
    assert block.input == {"city": "Paris", "unit": "celsius"}
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens == len(json_pieces)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_thinking_carries_the_signature(client: anthropic.Anthropic, stream: bool) -> None:
    arguments = {
        "model": MODEL,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "scenario:thinking"}],
    }
    if stream:
        with client.messages.stream(**arguments) as sse:
            message = sse.get_final_message()
    else:
        message = client.messages.create(**arguments)

    thinking, text = message.content
    assert thinking.type == "thinking"
    assert thinking.thinking
    assert thinking.signature == THINKING_SIGNATURE
    assert text.type == "text"
    assert text.text


def test_token_counts(client: anthropic.Anthropic) -> None:
    # 40 + 60 characters of system and message text -> 25 tokens, in count_tokens and usage alike.
    counted = client.messages.count_tokens(
        model=MODEL, system="s" * 40, messages=[{"role": "user", "content": "m" * 60}]
    )
    message = client.messages.create(
        model=MODEL,
        max_tokens=100,
        system="s" * 40,
        messages=[{"role": "user", "content": "m" * 60}],
        extra_headers={"x-simulator-cache": "100,2000"},
    )

    assert counted.input_tokens == 25
    assert message.usage.input_tokens == 25
    assert message.usage.cache_creation_input_tokens == 100
    assert message.usage.cache_read_input_tokens == 2000


@pytest.mark.parametrize(
    ("scenario", "error_class", "error_type", "retry_after"),
    [
        ("overloaded", anthropic.OverloadedError, "overloaded_error", "2"),
        ("server_error", anthropic.InternalServerError, "api_error", None),
        ("rate_limited", anthropic.RateLimitError, "rate_limit_error", "3"),
        ("bad_request", anthropic.BadRequestError, "invalid_request_error", None),
    ],
)
def test_error_scenarios(
    client: anthropic.Anthropic,
    scenario: str,
    error_class: type[anthropic.APIStatusError],
    error_type: str,
    retry_after: str | None,
) -> None:
    with pytest.raises(error_class) as raised:
        client.messages.create(
            model=MODEL, max_tokens=100, messages=HELLO, extra_headers={"x-simulator-scenario": scenario}
        )

    error = raised.value
    assert error.body["error"]["type"] == error_type
    assert error.body["request_id"] == error.response.headers["request-id"]
    assert error.response.headers.get("retry-after") == retry_after
    if scenario == "bad_request":
        # Claude Code starts compaction on exactly this text.
        assert error.body["error"]["message"] == "prompt is too long: 300000 tokens > 200000 maximum"


def test_error_mid_stream(client: anthropic.Anthropic) -> None:
    prompt = [{"role": "user", "content": "scenario:error_mid_stream"}]
    received = []
    with (
        pytest.raises(anthropic.APIStatusError) as raised,
        client.messages.stream(model=MODEL, max_tokens=100, messages=prompt) as stream,
    ):
        received.extend(stream.text_stream)

    assert received == ["Hello ", "from "]
    assert raised.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    # Without streaming there is nothing to interrupt: the failure is a plain 529.
    with pytest.raises(anthropic.OverloadedError):
        client.messages.create(model=MODEL, max_tokens=100, messages=prompt)


def test_truncated_stream_ends_without_message_stop(simulator: SimulatorThread) -> None:
    response = post(simulator, stream_body(), headers={"x-simulator-scenario": "truncated"})

    events = sse_events(response.text)
    assert [event["type"] for event in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
    ]
    assert simulator.stats()["completed_streams"] == 1  # ended by script, not by a client


def test_credentials(simulator: SimulatorThread, client: anthropic.Anthropic) -> None:
    missing = httpx.post(f"{simulator.base_url}/v1/messages", json=stream_body())
    simulator.set_bad_credentials(["sk-ant-test"])

    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.AuthenticationError):  # the SDK sends Bearer
        client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
    assert post(simulator, stream_body()).status_code == 401  # x-api-key
    assert post(simulator, stream_body(), headers={"x-api-key": "sk-ant-other"}).status_code == 200


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"{not json", {}),
        (b"[1, 2]", {}),
        ({"model": MODEL, "messages": HELLO}, {}),
        ({"model": MODEL, "messages": HELLO, "max_tokens": "100"}, {}),
        ({"model": MODEL, "messages": HELLO, "max_tokens": 100}, {"x-simulator-scenario": "nope"}),
    ],
    ids=["not-json", "not-object", "no-max-tokens", "string-max-tokens", "unknown-scenario"],
)
def test_invalid_requests(simulator: SimulatorThread, body: Any, headers: dict[str, str]) -> None:
    response = post(simulator, body, headers)

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["request_id"] == response.headers["request-id"]


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (503, anthropic.InternalServerError, "overloaded_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_fail_next(
    simulator: SimulatorThread,
    client: anthropic.Anthropic,
    status: int,
    error_class: type[anthropic.APIStatusError],
    error_type: str,
) -> None:
    simulator.fail_next(status, count=2, retry_after=5)

    for _ in range(2):
        with pytest.raises(error_class) as raised:
            client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
        assert raised.value.status_code == status
        assert raised.value.body["error"]["type"] == error_type
        assert raised.value.response.headers["retry-after"] == "5"
    assert client.messages.create(model=MODEL, max_tokens=100, messages=HELLO).content
    assert len(simulator.requests()) == 3  # failed requests are recorded too


def test_fail_next_zero_drops_the_connection(simulator: SimulatorThread, client: anthropic.Anthropic) -> None:
    simulator.fail_next(0)

    with pytest.raises(anthropic.APIConnectionError):
        client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
    assert len(simulator.requests()) == 1
    assert client.messages.create(model=MODEL, max_tokens=100, messages=HELLO).content


def test_recorded_requests(simulator: SimulatorThread, client: anthropic.Anthropic) -> None:
    client.beta.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=HELLO,
        betas=["interleaved-thinking-2025-05-14"],
        extra_query={"beta": "true"},  # what Claude Code appends; this SDK version does not
    )
    # Odd spacing and a non-ASCII character: the record must be the bytes sent, not a re-encoding.
    raw_body = '{"model":  "m", "max_tokens": 5,\n "messages": [{"role": "user", "content": "café"}]}'
    post(simulator, raw_body.encode())

    beta, raw = simulator.requests()
    assert (beta["method"], beta["path"], beta["query_string"]) == ("POST", "/v1/messages", "beta=true")
    assert beta["headers"]["authorization"] == "Bearer sk-ant-test"
    assert beta["headers"]["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert "anthropic-version" in beta["headers"]
    assert orjson.loads(beta["body"]) == {"model": MODEL, "max_tokens": 100, "messages": HELLO}
    assert raw["body"] == raw_body
    assert raw["headers"]["x-api-key"] == "sk-ant-test"


def test_slow_stream_is_paced_with_pings(simulator: SimulatorThread) -> None:
    headers = {"x-simulator-scenario": "slow", "x-simulator-deltas": "6", "x-simulator-delay-ms": "20"}
    started = time.monotonic()
    response = post(simulator, stream_body(), headers)
    elapsed = time.monotonic() - started

    assert elapsed >= 6 * 0.020
    assert [event["type"] for event in sse_events(response.text)] == [
        "message_start",
        "ping",
        "content_block_start",
        *["content_block_delta"] * 5,
        "ping",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert simulator.stats() == {"active_streams": 0, "completed_streams": 1, "cancelled_streams": 0}


def test_client_leaving_mid_stream_counts_as_cancelled(simulator: SimulatorThread) -> None:
    wait_until(lambda: simulator.stats()["active_streams"] == 0)  # a stream of an earlier test
    simulator.reset()
    headers = {
        **API_HEADERS,
        "x-simulator-scenario": "slow",
        "x-simulator-deltas": "1000",
        "x-simulator-delay-ms": "50",
    }
    url = f"{simulator.base_url}/v1/messages"
    with httpx.stream("POST", url, json=stream_body(), headers=headers) as response:
        lines = response.iter_lines()
        # The first delta arrives long before the stream could end: events are not buffered.
        while next(lines) != "event: content_block_delta":
            pass
        during = simulator.stats()
        # Abandoning an unfinished body makes httpcore close the connection: the client leaves.
        lines.close()

    assert during["active_streams"] == 1
    wait_until(lambda: simulator.stats()["active_streams"] == 0, timeout=10)
    assert simulator.stats() == {"active_streams": 0, "completed_streams": 0, "cancelled_streams": 1}


def test_models_and_unknown_paths(client: anthropic.Anthropic, simulator: SimulatorThread) -> None:
    models = client.models.list()
    unknown = httpx.get(f"{simulator.base_url}/v1/files", headers=API_HEADERS)

    assert [model.id for model in models.data] == ["claude-sonnet-4-6", "claude-haiku-4-5-20251001"]
    assert client.models.retrieve("claude-haiku-4-5-20251001").display_name == "Claude Haiku 4.5"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-nonexistent")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["type"] == "not_found_error"


def test_control_endpoints_over_http(simulator: SimulatorThread) -> None:
    control = f"{simulator.base_url}/_simulator"
    httpx.post(f"{control}/fail", json={"status": 500, "count": 1, "body": {"custom": True}}).raise_for_status()
    httpx.post(f"{control}/bad_credentials", json={"credentials": ["sk-ant-bad"]}).raise_for_status()

    failed = post(simulator, stream_body())
    refused = post(simulator, stream_body(), headers={"x-api-key": "sk-ant-bad"})
    recorded = httpx.get(f"{control}/requests").json()

    assert (failed.status_code, failed.json()) == (500, {"custom": True})
    assert refused.status_code == 401
    assert [entry["headers"]["x-api-key"] for entry in recorded] == ["sk-ant-test", "sk-ant-bad"]
    assert httpx.get(f"{control}/stats").json()["active_streams"] == 0
    httpx.delete(f"{control}/requests").raise_for_status()
    assert httpx.get(f"{control}/requests").json() == []
    httpx.post(f"{control}/reset").raise_for_status()
    assert post(simulator, stream_body(), headers={"x-api-key": "sk-ant-bad"}).status_code == 200


def test_simulate_upstream_command() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "simulate_upstream", "--port", str(port)],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # access logs; unread, they could fill a pipe
        text=True,
    )
    try:
        line = process.stdout.readline()  # printed once the socket listens
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", headers=API_HEADERS)
    finally:
        stop_process(process)
        process.stdout.close()

    assert f"http://127.0.0.1:{port}" in line
    assert "sk-ant-simulator" in line
    assert models.status_code == 200
