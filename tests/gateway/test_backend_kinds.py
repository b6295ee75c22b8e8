"""One set of gateway cases, run against every kind of backend, with the official SDK as client.

Anthropic's API is the simulator itself; Bedrock and Vertex are stand-ins (tests/bedrock_stand_in.py:
SigV4, Bedrock's body, event-stream frames; tests/vertex_stand_in.py: a token endpoint, Vertex's
paths and body), each with a simulator of its own behind it. Whatever the kind, the client must see
Anthropic's answers, errors and usage.
"""

from __future__ import annotations

import orjson
import pytest

from gateway.routing import health
from gateway.services import upstream_add
from gateway.simulator import THINKING_SIGNATURE, TOOL_INPUT
from gateway.simulator import estimate_input_tokens as simulator_estimate
from gateway.usage.writer import usage_writer
from tests.bedrock_stand_in import ANTHROPIC_VERSION
from tests.gateway.backends import BEDROCK_MODEL_ID, add_bedrock, add_vertex, only, sessions_starting_at
from tests.helpers import wait_until
from tests.vertex_stand_in import ANTHROPIC_VERSION as VERTEX_ANTHROPIC_VERSION

HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture(params=["anthropic", "bedrock", "vertex"])
def kind(request, gateway, bedrock, vertex) -> str:
    only(request.param, gateway, bedrock, vertex)
    return request.param


def usage_record(request_id: str):
    wait_until(lambda: usage_writer.find(request_id) is not None, timeout=5)
    return usage_writer.find(request_id)


def test_non_stream_message(gateway, kind, bedrock, vertex):
    response = gateway.client().messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=100, messages=HELLO
    )
    message = response.parse()
    assert message.content[0].text == "Hello from the simulator."
    assert message.model == "claude-sonnet-4-6"
    record = usage_record(response.headers["request-id"])
    assert (record.status, record.upstream, record.stream) == (200, "sim" if kind == "anthropic" else kind, False)
    assert (record.input_tokens, record.output_tokens) == (1, 4)
    if kind == "bedrock":
        (sent,) = bedrock.requests
        assert sent["path"] == "/model/anthropic.claude-sonnet-4-6-v1%3A0/invoke"
        assert sent["body"]["anthropic_version"] == ANTHROPIC_VERSION
        assert sent["body"].keys().isdisjoint({"model", "stream"})
        assert record.upstream_model == BEDROCK_MODEL_ID
    if kind == "vertex":
        (sent,) = vertex.requests
        assert sent["path"].endswith("/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-6:rawPredict")
        assert sent["body"]["anthropic_version"] == VERTEX_ANTHROPIC_VERSION


def test_text_stream_and_usage(gateway, kind):
    with gateway.client().messages.stream(model="claude-opus-5-5", max_tokens=100, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        message = stream.get_final_message()
        request_id = stream.response.headers["request-id"]
        content_type = stream.response.headers["content-type"]
    assert content_type.startswith("text/event-stream")
    assert (text, message.model, message.stop_reason) == ("Hello from the simulator.", "claude-opus-5-5", "end_turn")
    record = usage_record(request_id)
    assert (record.status, record.stream, record.input_tokens, record.output_tokens) == (200, True, 1, 4)
    assert record.time_to_first_token_ms is not None


def test_the_stream_is_anthropics_event_for_event(gateway, kind):
    """Bedrock's own additions (invocation metrics) never reach the client."""
    raw = gateway.client().messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=100, messages=HELLO, stream=True
    )
    body = raw.http_response.read()
    events = [event for event in body.split(b"\n\n") if event]
    names = [event.split(b"\n", 1)[0] for event in events]
    assert (names[0], names[-1]) == (b"event: message_start", b"event: message_stop")
    assert all(event.startswith(b"event: ") and b"\ndata: {" in event for event in events)
    assert b"amazon-bedrock" not in body


def test_tool_use_round_trip(gateway, kind):
    tools = [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}]
    question = {"role": "user", "content": "scenario:tool_use weather in Paris?"}
    client = gateway.client()
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=100, messages=[question], tools=tools) as stream:
        first = stream.get_final_message()
    tool_use = first.content[0]
    assert (tool_use.type, tool_use.input, first.stop_reason) == ("tool_use", TOOL_INPUT, "tool_use")
    answer = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "Sunny"}]}
    second = client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=100,
        tools=tools,
        messages=[question, {"role": "assistant", "content": first.content}, answer],
    )
    assert second.content[0].text == "Hello from the simulator."
    sent = orjson.loads(gateway.simulator.requests()[-1]["body"])
    assert sent["messages"][1]["content"][0]["id"] == tool_use.id


def test_thinking_arrives_with_its_signature(gateway, kind):
    with gateway.client().messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "scenario:thinking"}],
    ) as stream:
        message = stream.get_final_message()
    assert (message.content[0].type, message.content[0].signature) == ("thinking", THINKING_SIGNATURE)


@pytest.mark.parametrize("streams", [False, True])
def test_stop_sequences(gateway, kind, streams):
    options = {"model": "claude-sonnet-4-6", "max_tokens": 100, "messages": HELLO, "stop_sequences": ["simulator"]}
    if streams:
        with gateway.client().messages.stream(**options) as stream:
            message = stream.get_final_message()
    else:
        message = gateway.client().messages.create(**options)
    assert (message.content[0].text, message.stop_reason, message.stop_sequence) == (
        "Hello from the ",
        "stop_sequence",
        "simulator",
    )


def test_betas_reach_the_backend(gateway, kind, bedrock):
    gateway.client().messages.create(
        model="claude-sonnet-4-6",
        max_tokens=100,
        messages=HELLO,
        extra_headers={"anthropic-beta": "context-1m-2025-08-07, interleaved-thinking-2025-05-14"},
    )
    assert gateway.simulator.requests()[-1]["headers"]["anthropic-beta"].replace(" ", "") == (
        "context-1m-2025-08-07,interleaved-thinking-2025-05-14"
    )
    if kind == "bedrock":
        assert bedrock.requests[-1]["body"]["anthropic_beta"] == [
            "context-1m-2025-08-07",
            "interleaved-thinking-2025-05-14",
        ]


@pytest.mark.parametrize(
    ("status", "error_type", "exception"),
    [
        (400, "invalid_request_error", "BadRequestError"),
        (404, "not_found_error", "NotFoundError"),
        (500, "api_error", "InternalServerError"),
    ],
)
def test_backend_errors_reach_the_client_as_anthropics(gateway, kind, anthropic_errors, status, error_type, exception):
    body = {"type": "error", "error": {"type": error_type, "message": "The backend says no."}}
    gateway.simulator.fail_next(status, count=5, body=body)
    with pytest.raises(getattr(anthropic_errors, exception)) as raised:
        gateway.client().messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=HELLO)
    error = raised.value
    assert error.status_code == status
    assert error.body["type"] == "error"
    assert (error.body["error"]["type"], error.body["error"]["message"]) == (error_type, "The backend says no.")
    assert error.body["request_id"] == error.response.headers["request-id"]


def test_an_overloaded_backend_is_overloaded_for_the_client(gateway, kind, anthropic_errors):
    with pytest.raises(anthropic_errors.APIStatusError) as raised:
        gateway.client().messages.create(
            model="claude-sonnet-4-6", max_tokens=100, messages=[{"role": "user", "content": "scenario:overloaded"}]
        )
    assert (raised.value.status_code, raised.value.body["error"]["type"]) == (529, "overloaded_error")


def error_event_of_stream(gateway, anthropic_errors, messages: list[dict]) -> tuple[str, str]:
    """The type of the error event that ends the stream, and the stream's request id."""
    stream = gateway.client().messages.stream(model="claude-sonnet-4-6", max_tokens=100, messages=messages)
    with stream as events:
        request_id = events.response.headers["request-id"]
        with pytest.raises(anthropic_errors.APIStatusError) as raised:
            "".join(events.text_stream)
    return raised.value.body["error"]["type"], request_id


def test_an_error_mid_stream_reaches_the_client_as_an_error_event(gateway, kind, anthropic_errors):
    messages = [{"role": "user", "content": "scenario:error_mid_stream"}]
    error_type, request_id = error_event_of_stream(gateway, anthropic_errors, messages)
    assert error_type == "overloaded_error"
    assert usage_record(request_id).error_type == "overloaded_error"


def test_bedrock_frames_are_relayed_as_they_arrive(gateway, bedrock):
    """The first delta reaches the client while Bedrock still streams the rest (20 deltas, 0.1 s apart)."""
    only("bedrock", gateway, bedrock, None)
    slow = [{"role": "user", "content": "scenario:slow"}]
    with gateway.client().messages.stream(model="claude-sonnet-4-6", max_tokens=100, messages=slow) as stream:
        first = next(iter(stream.text_stream))
        still_streaming = bedrock.simulator.stats()["active_streams"]
        rest = "".join(stream.text_stream)
    assert (first, still_streaming) == ("tick 1 ", 1)
    assert rest.endswith("tick 20 ")


def test_a_corrupt_bedrock_frame_ends_the_stream_with_an_error_event(gateway, bedrock, anthropic_errors):
    only("bedrock", gateway, bedrock, None)
    bedrock.corrupt_frame = 3  # after message_start, ping and content_block_start
    error_type, request_id = error_event_of_stream(gateway, anthropic_errors, HELLO)
    assert error_type == "api_error"
    assert usage_record(request_id).error_type == "api_error"
    bedrock.corrupt_frame = None
    assert gateway.client().messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=HELLO).content


def test_bedrock_takes_an_api_key_as_a_bearer_token(gateway, bedrock):
    only("bedrock", gateway, bedrock, None, credential="bedrock-api-key-stand-in")
    message = gateway.client().messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=HELLO)
    assert message.content[0].text == "Hello from the simulator."
    assert bedrock.requests[-1]["headers"]["Authorization"] == "Bearer bedrock-api-key-stand-in"


def test_a_signature_bedrock_refuses_is_our_credential_not_the_clients(gateway, bedrock, anthropic_errors):
    """A wrong secret key fails SigV4: the credential rests, and the client is told of an outage, not of its key."""
    only("bedrock", gateway, bedrock, None, credential="AKIDSTANDIN:not-the-secret")
    with pytest.raises(anthropic_errors.APIStatusError) as raised:
        gateway.client().messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=HELLO)
    assert raised.value.status_code == 503
    assert bedrock.requests == []  # refused before anything was taken


def test_count_tokens_is_asked_of_bedrock(gateway, bedrock):
    only("bedrock", gateway, bedrock, None)
    counted = gateway.client().messages.count_tokens(model="claude-sonnet-4-6", messages=HELLO)
    (sent,) = bedrock.requests
    assert sent["path"] == "/model/anthropic.claude-sonnet-4-6-v1%3A0/count-tokens"
    assert bedrock.simulator.requests()[-1]["path"] == "/v1/messages/count_tokens"
    assert counted.input_tokens == simulator_estimate({"model": "claude-sonnet-4-6", "messages": HELLO})


def test_count_tokens_bedrock_will_not_count_are_estimated(gateway, bedrock):
    """Bedrock counts for foundation models, not inference profiles: the gateway's estimate answers."""
    from gateway.tokens import estimate_input_tokens

    only("bedrock", gateway, bedrock, None)
    upstream_add(
        name="bedrock",
        kind="bedrock",
        base_url=bedrock.base_url,
        region=bedrock.region,
        credentials=[],
        model_globs=["claude-opus-5-5=us.anthropic.claude-opus-5-5-v1:0"],
    )
    counted = gateway.client().messages.count_tokens(model="claude-opus-5-5", messages=HELLO)
    assert len(bedrock.requests) == 1  # asked, and refused
    assert bedrock.simulator.requests() == []
    assert counted.input_tokens == estimate_input_tokens({"model": "claude-opus-5-5", "messages": HELLO})


def test_failover_from_anthropic_to_bedrock_and_back(gateway, bedrock):
    add_bedrock(bedrock, fallback=True)
    gateway.simulator.fail_next(529, retry_after=30)
    client = gateway.client()
    first = client.messages.with_raw_response.create(model="claude-sonnet-4-6", max_tokens=100, messages=HELLO)
    assert usage_record(first.headers["request-id"]).upstream == "bedrock"
    assert len(bedrock.requests) == 1
    health.reset()  # the cooled credential's rest is over
    second = client.messages.with_raw_response.create(model="claude-sonnet-4-6", max_tokens=100, messages=HELLO)
    assert usage_record(second.headers["request-id"]).upstream == "sim"
    assert len(bedrock.requests) == 1


def test_a_vertex_token_is_fetched_once_and_reused(gateway, vertex):
    only("vertex", gateway, None, vertex)
    client = gateway.client()
    for _ in range(3):
        client.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=HELLO)
    assert vertex.token_requests == 1
    assert len({sent["headers"]["Authorization"] for sent in vertex.requests}) == 1


def test_a_google_quota_refusal_is_a_rate_limit_error(gateway, vertex, anthropic_errors):
    only("vertex", gateway, None, vertex)
    vertex.quota_refusals = 1
    with pytest.raises(anthropic_errors.RateLimitError) as raised:
        gateway.client().messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=HELLO)
    error = raised.value.body["error"]
    assert (error["type"], error["message"]) == ("rate_limit_error", "Quota exceeded for aiplatform.googleapis.com.")


def test_count_tokens_is_asked_of_vertex(gateway, vertex):
    only("vertex", gateway, None, vertex)
    counted = gateway.client().messages.count_tokens(model="claude-sonnet-4-6", messages=HELLO)
    (sent,) = vertex.requests
    assert sent["path"].endswith("/publishers/anthropic/models/count-tokens:rawPredict")
    assert sent["body"]["model"] == "claude-sonnet-4-6"
    assert vertex.simulator.requests()[-1]["path"] == "/v1/messages/count_tokens"
    assert counted.input_tokens == simulator_estimate({"model": "claude-sonnet-4-6", "messages": HELLO})


def test_a_service_account_google_refuses_is_our_credential_not_the_clients(gateway, vertex, anthropic_errors):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    refused_key = vertex.service_account_key(stranger.decode())
    only("vertex", gateway, None, vertex, credential=refused_key)
    with pytest.raises(anthropic_errors.APIStatusError) as raised:
        gateway.client().messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=HELLO)
    assert raised.value.status_code == 503
    assert (vertex.token_requests, vertex.requests) == (1, [])

    # Beside a key Google accepts, only the refused key rests: its backend keeps serving through the other.
    add_vertex(vertex)
    for session in sessions_starting_at(refused_key):
        gateway.client().messages.create(
            model="claude-sonnet-4-6",
            max_tokens=100,
            messages=HELLO,
            extra_headers={"x-claude-code-session-id": session},
        )
    assert vertex.token_requests == 2  # the refused key was asked for once only, then rested
    assert len(vertex.requests) == 4


def test_failover_from_anthropic_to_bedrock_to_vertex_and_back(gateway, bedrock, vertex):
    add_bedrock(bedrock, fallback=True)
    add_vertex(vertex)  # the third for claude-*
    gateway.simulator.fail_next(529, retry_after=30)
    bedrock.simulator.fail_next(529, retry_after=30)
    client = gateway.client()
    first = client.messages.with_raw_response.create(model="claude-sonnet-4-6", max_tokens=100, messages=HELLO)
    assert usage_record(first.headers["request-id"]).upstream == "vertex"
    assert (len(bedrock.requests), len(vertex.requests)) == (1, 1)
    health.reset()  # the cooled credentials' rest is over
    second = client.messages.with_raw_response.create(model="claude-sonnet-4-6", max_tokens=100, messages=HELLO)
    assert usage_record(second.headers["request-id"]).upstream == "sim"
    assert (len(bedrock.requests), len(vertex.requests)) == (1, 1)
