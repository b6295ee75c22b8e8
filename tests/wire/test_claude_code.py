"""Claude Code (@anthropic-ai/claude-code), run headless with `claude -p`, against the live gateway.

Only ANTHROPIC_BASE_URL and a credential point it at the gateway. The `traffic` recorder shows
what Claude Code sent and what the gateway answered; the simulator shows what was passed on.
The pinned version sends one `POST /v1/messages?beta=true` (streamed) for a one-turn prompt:
no HEAD probe, no count_tokens and no /v1/models with non-essential traffic turned off.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from gateway.simulator import TEXT_ANSWER
from tests.conftest import Gateway
from tests.gateway.backends import only
from tests.gateway.conftest import move_to_new_plan
from tests.gateway.test_rate_limits import parse_time
from tests.helpers import wait_until
from tests.wire.conftest import ClaudeCode, TrafficRecorder

HELLO = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "Hello"}]}
UPSTREAM_KEY = "sk-ant-sim-primary"  # the credential the gateway fixture gives the simulator


def assert_all_answered(traffic: TrafficRecorder) -> None:
    """No request Claude Code made was refused (a 404 or 401 would make it degrade or retry)."""
    refused = [(e.method, e.path, e.status, e.error_body[:200]) for e in traffic.exchanges if e.status != 200]
    assert not refused, refused


def test_print_json_with_api_key(claude: ClaudeCode, gateway: Gateway, traffic: TrafficRecorder) -> None:
    out = claude.run("say hello", ANTHROPIC_API_KEY=gateway.key)

    assert (out["type"], out["is_error"], out["result"]) == ("result", False, TEXT_ANSWER)
    assert_all_answered(traffic)
    [sent] = traffic.exchanges
    assert (sent.method, sent.path, sent.query_string) == ("POST", "/v1/messages", "beta=true")
    assert sent.headers["x-api-key"] == gateway.key
    assert sent.headers["user-agent"].startswith("claude-cli/")

    [upstream] = gateway.simulator.requests()
    assert (upstream["method"], upstream["path"], upstream["query_string"]) == (
        "POST",
        "/v1/messages",
        "beta=true",
    )
    betas = upstream["headers"]["anthropic-beta"]
    assert betas == sent.headers["anthropic-beta"]
    assert "claude-code-20250219" in betas.split(",")
    for name in ("anthropic-version", "x-app", "user-agent", "x-claude-code-session-id"):
        assert upstream["headers"][name] == sent.headers[name], name
    assert upstream["headers"]["x-api-key"] == UPSTREAM_KEY
    assert "authorization" not in upstream["headers"]
    # The ~50 KB body (billing header block, tools, thinking, context_management) is relayed as is.
    assert upstream["body"] == sent.body.decode()
    assert json.loads(upstream["body"])["stream"] is True


@pytest.mark.parametrize("kind", ["bedrock", "vertex"])
def test_through_bedrock_and_vertex(claude: ClaudeCode, gateway: Gateway, traffic: TrafficRecorder, request, kind):
    """The same Claude Code turn, served by a Bedrock or Vertex backend: its betas go in the form
    that backend takes them, and what comes back is Anthropic's stream."""
    backend = request.getfixturevalue(kind)
    only(kind, gateway, backend, backend)
    out = claude.run("say hello", ANTHROPIC_API_KEY=gateway.key)

    assert (out["is_error"], out["result"]) == (False, TEXT_ANSWER)
    assert_all_answered(traffic)
    [sent] = traffic.exchanges
    [passed_on] = backend.requests
    betas = sent.headers["anthropic-beta"].split(",")
    if kind == "bedrock":
        assert passed_on["body"]["anthropic_beta"] == betas
    else:
        assert passed_on["headers"]["anthropic-beta"].split(",") == betas
    assert passed_on["body"]["messages"] == json.loads(sent.body)["messages"]


def test_print_json_with_auth_token(claude: ClaudeCode, gateway: Gateway, traffic: TrafficRecorder) -> None:
    out = claude.run("say hello", ANTHROPIC_AUTH_TOKEN=gateway.key)

    assert (out["is_error"], out["result"]) == (False, TEXT_ANSWER)
    assert_all_answered(traffic)
    [sent] = traffic.exchanges
    assert sent.headers["authorization"] == f"Bearer {gateway.key}"
    assert "x-api-key" not in sent.headers
    [upstream] = gateway.simulator.requests()
    assert upstream["headers"]["x-api-key"] == UPSTREAM_KEY
    assert "authorization" not in upstream["headers"]


def test_truncated_stream_falls_back_to_a_whole_message(
    claude: ClaudeCode, gateway: Gateway, traffic: TrafficRecorder
) -> None:
    """A stream that ends without message_stop makes Claude Code ask again without streaming."""
    out = claude.run(
        "say hello",
        ANTHROPIC_API_KEY=gateway.key,
        ANTHROPIC_CUSTOM_HEADERS="x-simulator-scenario: truncated",
    )

    assert (out["is_error"], out["result"]) == (False, TEXT_ANSWER)
    assert_all_answered(traffic)
    streamed, whole = (json.loads(r["body"]) for r in gateway.simulator.requests())
    assert streamed["stream"] is True
    assert whole.get("stream") in (False, None)
    assert len(traffic.exchanges) == 2


def test_at_its_5_hour_limit_it_stops_at_once_and_says_when_the_window_resets(
    claude: ClaudeCode, gateway: Gateway, traffic: TrafficRecorder
) -> None:
    """A key whose 5-hour window is used up: one request, a 429 with x-should-retry: false and the
    unified headers, and Claude Code gives up without retrying, quoting our message."""
    move_to_new_plan(gateway, "one-a-session", requests_per_minute=10, requests_per_5_hours=1, requests_per_week=10)
    headers = {"x-api-key": gateway.key}
    assert httpx.post(gateway.base_url + "/v1/messages", json=HELLO, headers=headers).status_code == 200
    used_up = len(traffic.exchanges)

    out = claude.run("say hello", succeeds=False, ANTHROPIC_API_KEY=gateway.key)

    [refused] = traffic.exchanges[used_up:]  # one request: no retry
    assert refused.status == 429
    assert (out["is_error"], out["api_error_status"], out["api_error_type"]) == (True, 429, "rate_limit_error")
    assert out["result"].startswith("API Error: Request rejected (429) · Rate limit reached: your One-A-Session plan")
    assert "per 5 hours. The window resets at " in out["result"]


def test_at_a_token_window_limit_it_waits_and_then_succeeds(
    claude: ClaudeCode, gateway: Gateway, traffic: TrafficRecorder
) -> None:
    """A key over its input tokens per minute: a 429 with retry-after and no x-should-retry, which
    Claude Code waits out and asks again, until the window has drained and it is answered."""
    move_to_new_plan(
        gateway,
        "tokens",
        requests_per_minute=100,
        requests_per_5_hours=100,
        requests_per_week=100,
        input_tokens_per_minute=60_000,  # drains 1,000 a second
    )
    # The simulator counts 80,000 input tokens: 20,000 over, about 20 s to drain below the limit.
    huge = {**HELLO, "messages": [{"role": "user", "content": "x" * 320_000}]}
    headers = {"x-api-key": gateway.key}
    sent_at = time.time()
    assert httpx.post(gateway.base_url + "/v1/messages", json=huge, headers=headers).status_code == 200

    def drained_at() -> float:
        report = httpx.get(gateway.base_url + "/llmapi/usage", headers=headers).json()
        return parse_time(report["windows"]["input_tokens"]["resets_at"]).timestamp()

    # The answer's count has replaced the estimate (60,000, the limit): 80 s to drain, not 60.
    wait_until(lambda: drained_at() > sent_at + 70)
    filled = len(traffic.exchanges)

    out = claude.run("say hello", ANTHROPIC_API_KEY=gateway.key)

    assert (out["is_error"], out["result"]) == (False, TEXT_ANSWER)
    statuses = [exchange.status for exchange in traffic.exchanges[filled:]]
    assert (statuses[0], statuses[-1]) == (429, 200), statuses
    assert b"input tokens per minute" in traffic.exchanges[filled].error_body
