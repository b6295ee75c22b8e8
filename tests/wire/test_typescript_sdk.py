"""The official TypeScript SDK (@anthropic-ai/sdk) against the live gateway.

Each test runs a small ESM script from tests/wire/js with node. The scripts find the gateway
through ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY only, as a user's program would, and print one
JSON line: what the SDK returned or raised, and the requests it sent (method, URL, headers).
"""

from __future__ import annotations

import pytest

from gateway.simulator import TEXT_ANSWER, TOOL_INPUT, TOOL_NAME
from keys import keyformat
from tests.conftest import Gateway
from tests.wire.conftest import NodeRunner


def gateway_env(gateway: Gateway, key: str | None = None) -> dict[str, str]:
    return {"ANTHROPIC_BASE_URL": gateway.base_url, "ANTHROPIC_API_KEY": key or gateway.key}


def upstream_calls(gateway: Gateway) -> list[tuple[str, str, str]]:
    return [(r["method"], r["path"], r["query_string"]) for r in gateway.simulator.requests()]


def test_create_returns_the_message_and_forwards_the_sdk_headers(gateway: Gateway, node: NodeRunner) -> None:
    out = node.run("create.mjs", **gateway_env(gateway))

    message = out["result"]["message"]
    assert message["content"] == [{"type": "text", "text": TEXT_ANSWER}]
    assert message["model"] == "claude-sonnet-4-6"
    assert message["usage"]["output_tokens"] == 4
    assert out["result"]["requestId"].startswith("req_")
    [sent] = out["sent"]
    [upstream] = gateway.simulator.requests()
    assert (upstream["method"], upstream["path"]) == ("POST", "/v1/messages")
    for name in ("anthropic-version", "user-agent", "x-stainless-lang", "x-stainless-package-version"):
        assert upstream["headers"][name] == sent["headers"][name], name
    assert gateway.key not in str(upstream["headers"])


def test_stream_text(gateway: Gateway, node: NodeRunner) -> None:
    out = node.run("stream.mjs", "Hello", **gateway_env(gateway))

    result = out["result"]
    assert result["contentType"].startswith("text/event-stream")
    assert result["text"] == TEXT_ANSWER
    [block] = result["message"]["content"]
    assert (block["type"], block["text"]) == ("text", TEXT_ANSWER)
    assert result["message"]["stop_reason"] == "end_turn"
    assert result["events"][0] == "message_start"
    assert result["events"][-1] == "message_stop"
    [upstream] = gateway.simulator.requests()
    assert '"stream":true' in upstream["body"]


def test_stream_tool_use_input_is_parsed(gateway: Gateway, node: NodeRunner) -> None:
    out = node.run("stream.mjs", "scenario:tool_use What is the weather in Paris?", **gateway_env(gateway))

    message = out["result"]["message"]
    [tool_use] = message["content"]
    assert (tool_use["type"], tool_use["name"]) == ("tool_use", TOOL_NAME)
    assert tool_use["input"] == TOOL_INPUT
    assert message["stop_reason"] == "tool_use"
    assert out["result"]["text"] == ""


def test_count_tokens(gateway: Gateway, node: NodeRunner) -> None:
    out = node.run("count_tokens.mjs", **gateway_env(gateway))

    # The simulator counts message and system characters // 4.
    expected = (len("You are a terse assistant.") + len("How many tokens is this question, roughly?")) // 4
    assert out["result"] == {"input_tokens": expected}
    assert upstream_calls(gateway) == [("POST", "/v1/messages/count_tokens", "")]


def test_models_list_paginates_and_retrieve(gateway: Gateway, node: NodeRunner) -> None:
    out = node.run("models.mjs", **gateway_env(gateway))

    listed = out["result"]["listed"]
    ids = [model["id"] for model in listed]
    assert len(ids) > 5  # more than one page of 5 was walked
    assert len(set(ids)) == len(ids)
    assert {"claude-sonnet-4-6", "claude-haiku-4-5"} <= set(ids)
    assert all(model["type"] == "model" and model["created_at"] for model in listed)
    assert out["result"]["one"]["id"] == "claude-haiku-4-5"
    pages = [sent["url"] for sent in out["sent"] if "/v1/models?" in sent["url"]]
    assert len(pages) > 1
    assert all("after_id=" in url for url in pages[1:])


@pytest.mark.parametrize(
    ("model", "prompt", "good_key", "expected", "message_start"),
    [
        pytest.param("gpt-4o", "Hello", True, ("NotFoundError", 404, "not_found_error"), "model: ", id="unknown-model"),
        pytest.param(
            "claude-sonnet-4-6",
            "Hello",
            False,
            ("AuthenticationError", 401, "authentication_error"),
            "invalid x-api-key",
            id="bad-key",
        ),
        pytest.param(
            "claude-sonnet-4-6",
            "scenario:bad_request",
            True,
            ("BadRequestError", 400, "invalid_request_error"),
            "prompt is too long: ",  # the upstream's text, verbatim: Claude Code compacts on it
            id="prompt-too-long",
        ),
        pytest.param(
            "claude-sonnet-4-6",
            "scenario:overloaded",
            True,
            ("OverloadedError", 529, "overloaded_error"),
            "Overloaded",
            id="overloaded",
        ),
    ],
)
def test_errors_map_to_sdk_classes(
    gateway: Gateway,
    node: NodeRunner,
    model: str,
    prompt: str,
    good_key: bool,
    expected: tuple[str, int, str],
    message_start: str,
) -> None:
    key = gateway.key if good_key else keyformat.generate_key()  # well formed, but nobody's
    error = node.run("error.mjs", model, prompt, **gateway_env(gateway, key))["result"]

    assert (error["class"], error["status"], error["type"]) == expected
    assert error["message"].startswith(message_start)
    assert error["requestID"].startswith("req_")


def test_bearer_auth_token(gateway: Gateway, node: NodeRunner) -> None:
    out = node.run("bearer.mjs", **gateway_env(gateway))

    assert out["result"]["message"]["content"][0]["text"] == TEXT_ANSWER
    [sent] = out["sent"]
    assert sent["headers"]["authorization"] == f"Bearer {gateway.key}"
    assert "x-api-key" not in sent["headers"]
    [upstream] = gateway.simulator.requests()
    assert upstream["headers"]["x-api-key"] == "sk-ant-sim-primary"
    assert "authorization" not in upstream["headers"]
