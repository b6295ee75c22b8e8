"""Streams: relayed as they arrive, failures after the first byte as SSE errors, disconnects."""

from __future__ import annotations

import httpx
import orjson
import pytest

from gateway.usage.writer import usage_writer
from tests.helpers import wait_until


def stream_body(scenario: str, **extra: object) -> dict:
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": f"scenario:{scenario}"}],
        **extra,
    }


def sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], orjson.loads(lines["data"])))
    return events


def test_error_mid_stream_reaches_the_sdk(gateway, anthropic_errors):
    with (
        pytest.raises(anthropic_errors.APIStatusError, match="overloaded_error"),
        gateway.client().messages.stream(
            model="claude-sonnet-4-6",
            max_tokens=100,
            messages=[{"role": "user", "content": "scenario:error_mid_stream"}],
        ) as stream,
    ):
        stream.until_done()


def test_stream_ending_without_message_stop_becomes_an_error_event(gateway):
    with httpx.stream(
        "POST",
        gateway.base_url + "/v1/messages",
        json=stream_body("truncated"),
        headers={"x-api-key": gateway.key},
    ) as response:
        events = sse_events(response.read().decode())
        request_id = response.headers["request-id"]
    assert events[0][0] == "message_start"
    assert events[-1][0] == "error"
    assert events[-1][1]["error"]["type"] == "api_error"
    assert events[-1][1]["request_id"] == request_id
    assert "message_stop" not in [name for name, _ in events]


def test_every_event_has_an_event_line_equal_to_its_type(gateway):
    with httpx.stream(
        "POST",
        gateway.base_url + "/v1/messages",
        json=stream_body("tool_use"),
        headers={"x-api-key": gateway.key},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response.read().decode())
    assert all(name == data["type"] for name, data in events)
    assert [name for name, _ in events][-1] == "message_stop"


def test_deltas_are_relayed_before_the_upstream_finishes(gateway):
    headers = {"x-api-key": gateway.key, "x-simulator-deltas": "50", "x-simulator-delay-ms": "100"}
    with httpx.stream("POST", gateway.base_url + "/v1/messages", json=stream_body("slow"), headers=headers) as response:
        received = b""
        for chunk in response.iter_raw():
            received += chunk
            if b"content_block_delta" in received:
                break
        # The first delta is here while the upstream is still streaming the other 49 (a stream an
        # earlier test left may be counted too; CI once saw 0 here, so say where the request went).
        assert len(gateway.simulator.requests()) == 1, "the request did not reach the test's simulator"
        assert gateway.simulator.stats()["active_streams"] >= 1


def test_client_disconnect_cancels_the_upstream_and_still_records_usage(gateway):
    headers = {"x-api-key": gateway.key, "x-simulator-deltas": "200", "x-simulator-delay-ms": "50"}
    with httpx.stream("POST", gateway.base_url + "/v1/messages", json=stream_body("slow"), headers=headers) as response:
        request_id = response.headers["request-id"]
        for chunk in response.iter_raw():
            if b"content_block_delta" in chunk:
                break
    # The client has closed its connection; the gateway must give up the upstream stream.
    wait_until(lambda: gateway.simulator.stats()["cancelled_streams"] == 1, timeout=5)
    wait_until(lambda: usage_writer.find(request_id) is not None, timeout=5)
    record = usage_writer.find(request_id)
    assert record.client_disconnected
    assert record.input_tokens >= 1  # from message_start, seen before the client left


def test_usage_of_a_stream_comes_from_the_upstream_events(gateway):
    headers = {"x-api-key": gateway.key, "x-simulator-cache": "120,3000"}
    with httpx.stream("POST", gateway.base_url + "/v1/messages", json=stream_body("text"), headers=headers) as response:
        response.read()
        request_id = response.headers["request-id"]
    wait_until(lambda: usage_writer.find(request_id) is not None, timeout=5)
    record = usage_writer.find(request_id)
    assert (record.cache_creation_input_tokens, record.cache_read_input_tokens) == (120, 3000)
    assert record.output_tokens == 4
