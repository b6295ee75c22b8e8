"""The fixed Anthropic-format payloads of the bench: the request, the message, the SSE stream."""

from __future__ import annotations

import orjson

# The model names route to the two stand-ins (bench/provision.py sets the routes up).
FIXED_MODEL = "claude-bench-fixed"  # nginx: a fixed answer, as fast as an upstream can be
PACED_MODEL = "claude-bench-paced"  # bench/paced_upstream.py: deltas at a fixed interval

STREAM_DELTAS = 20  # content_block_delta events in nginx's fixed stream
USAGE = {
    "input_tokens": 25,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
    "output_tokens": STREAM_DELTAS,
}


def request_body(model: str, *, stream: bool) -> bytes:
    """A small, typical Messages request (a system prompt and one user turn)."""
    return orjson.dumps(
        {
            "model": model,
            "max_tokens": 256,
            "stream": stream,
            "system": "You are a helpful assistant. Answer briefly.",
            "messages": [{"role": "user", "content": "Say hello in twenty words, please."}],
        }
    )


CLAUDE_CODE_SIZE = 48 * 1024  # what a Claude Code turn sends, give or take: tools, system prompt, history


def claude_code_request_body(model: str, *, stream: bool, size: int = CLAUDE_CODE_SIZE) -> bytes:
    """A request shaped like Claude Code's: tool definitions, a long system prompt and a tool-using history.

    Deterministic, and padded with history turns until it reaches `size` bytes or just over.
    """
    tools = [
        {
            "name": f"tool_{number}",
            "description": f"Tool number {number}: reads, edits or searches files of the project. " * 6,
            "input_schema": {
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "The absolute path of the file to work on."},
                    "pattern": {"type": "string", "description": "A regular expression to look for."},
                    "limit": {"type": "integer", "description": "How many lines to read at most."},
                },
                "required": ["path"],
            },
        }
        for number in range(16)
    ]
    request: dict[str, object] = {
        "model": model,
        "max_tokens": 32000,
        "stream": stream,
        "system": [
            {"type": "text", "text": "You are an interactive command line tool that helps with software work. " * 40}
        ],
        "tools": tools,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Find where the limits are checked."}]}],
        "metadata": {"user_id": "user_bench_account_0000_session_0000"},
    }
    turn = 0
    while len(orjson.dumps(request)) < size:
        turn += 1
        request["messages"] += [
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": f"Let me look at file {turn}."},
                    {"type": "tool_use", "id": f"toolu_{turn:020d}", "name": "tool_1", "input": {"path": f"/f{turn}"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": f"toolu_{turn:020d}",
                        "content": f"line {turn}: def check(window, used, limit): return used < limit\n" * 12,
                    }
                ],
            },
        ]
    return orjson.dumps(request)


def message(model: str) -> dict[str, object]:
    return {
        "id": "msg_bench_0000000000000000000000",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": " ".join(f"word{i}" for i in range(STREAM_DELTAS))}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": USAGE,
    }


def message_body(model: str) -> bytes:
    return orjson.dumps(message(model))


def sse_event(event: dict[str, object]) -> bytes:
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def stream_head(model: str) -> bytes:
    """message_start and content_block_start: what a stream begins with."""
    start = {**message(model), "content": [], "stop_reason": None, "usage": {**USAGE, "output_tokens": 1}}
    return sse_event({"type": "message_start", "message": start}) + sse_event(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    )


def stream_delta(number: int) -> bytes:
    return sse_event(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": f"word{number} "}}
    )


def stream_tail(output_tokens: int) -> bytes:
    """content_block_stop, message_delta (with usage) and message_stop: how a stream ends."""
    return (
        sse_event({"type": "content_block_stop", "index": 0})
        + sse_event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {**USAGE, "output_tokens": output_tokens},
            }
        )
        + sse_event({"type": "message_stop"})
    )


def stream_body(model: str, deltas: int = STREAM_DELTAS) -> bytes:
    return stream_head(model) + b"".join(stream_delta(i) for i in range(deltas)) + stream_tail(deltas)


COUNT_TOKENS_BODY = b'{"input_tokens":25}'
