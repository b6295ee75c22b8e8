"""A scripted stand-in for api.anthropic.com, for tests and for working on a laptop.

It speaks the Messages API wire format exactly (see anthropic-wire.md), so the official SDKs and
the gateway talk to it unchanged. What it answers is chosen per request by a *scenario*:

- the header `x-simulator-scenario: NAME`, else
- a last user message whose text starts with `scenario:NAME`, else
- `text`.

Scenarios: text, tool_use, thinking, error_mid_stream, truncated, slow, overloaded, server_error,
rate_limited, bad_request. Headers tune them: `x-simulator-deltas` and `x-simulator-delay-ms`
(slow), `x-simulator-cache: CREATE,READ` (cache token counts in `usage`).

Usage is deterministic: input_tokens = characters of message and system text // 4 (at least 1);
output_tokens = the number of content_block_delta events the answer has (stream or not).

Control endpoints under `/_simulator/` (no credentials) record requests, inject failures, refuse
credentials and count streams; `SimulatorThread` runs the whole thing in a background thread and
exposes the same controls as methods on the shared state.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import string
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from gateway.wire import error_type_of_status

# Any credential works unless refused through /_simulator/bad_credentials; this is the one the
# command suggests.
SIMULATOR_API_KEY = "sk-ant-simulator"

# A fixed, realistic-looking signature: tests check that it survives the gateway byte for byte.
THINKING_SIGNATURE = base64.b64encode(hashlib.sha512(b"llmapi simulator thinking signature").digest() * 4).decode()

TEXT_ANSWER = "Hello from the simulator."
THINKING_TEXT = "The user greets me. A short, friendly answer will do."
THINKING_ANSWER = "Hello! I thought about it first."
TOOL_NAME = "get_weather"
TOOL_INPUT = {"city": "Paris", "unit": "celsius"}

DEFAULT_SLOW_DELTAS = 20
DEFAULT_SLOW_DELAY_MS = 100
SLOW_PING_EVERY = 5  # deltas between pings in the slow scenario
TRUNCATE_AFTER = 2  # deltas sent before error_mid_stream and truncated give up

MODELS = [
    {
        "type": "model",
        "id": "claude-sonnet-4-6",
        "display_name": "Claude Sonnet 4.6",
        "created_at": "2026-02-17T00:00:00Z",
    },
    {
        "type": "model",
        "id": "claude-haiku-4-5-20251001",
        "display_name": "Claude Haiku 4.5",
        "created_at": "2025-10-01T00:00:00Z",
    },
]

# Scenarios that answer an HTTP error before any stream starts: status, type, message, retry-after.
ERROR_SCENARIOS: dict[str, tuple[int, str, str, int | None]] = {
    "overloaded": (529, "overloaded_error", "Overloaded", 2),
    "server_error": (500, "api_error", "Internal server error", None),
    "rate_limited": (429, "rate_limit_error", "Number of request tokens has exceeded your rate limit.", 3),
    "bad_request": (400, "invalid_request_error", "prompt is too long: 300000 tokens > 200000 maximum", None),
}
STREAM_SCENARIOS = {"text", "tool_use", "thinking", "error_mid_stream", "truncated", "slow"}
SCENARIOS = STREAM_SCENARIOS | set(ERROR_SCENARIOS)


_ALPHABET = string.ascii_letters + string.digits


def random_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(24))


# --------------------------------------------------------------------------- shared state


@dataclass
class Failure:
    """An injected answer for the next `remaining` /v1/messages requests; status 0 drops them."""

    status: int
    remaining: int
    retry_after: float | None = None
    body: Any = None
    content_type: str = "application/json"


@dataclass
class SimulatorState:
    """Everything the control endpoints change. Locked: tests touch it from their own thread."""

    recorded: list[dict[str, Any]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    bad_credentials: set[str] = field(default_factory=set)
    # credential -> (requests remaining, seconds to the reset) its answers report instead of the default
    quotas: dict[str, tuple[int, float]] = field(default_factory=dict)
    active_streams: int = 0
    completed_streams: int = 0
    cancelled_streams: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.recorded.append(entry)

    def requests(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(entry) for entry in self.recorded]

    def clear_requests(self) -> None:
        with self.lock:
            self.recorded.clear()

    def add_failure(self, failure: Failure) -> None:
        with self.lock:
            self.failures.append(failure)

    def take_failure(self) -> Failure | None:
        """Consume one use of the oldest injected failure, if any."""
        with self.lock:
            if not self.failures:
                return None
            failure = self.failures[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                self.failures.pop(0)
            return Failure(failure.status, 1, failure.retry_after, failure.body, failure.content_type)

    def set_bad_credentials(self, credentials: list[str]) -> None:
        with self.lock:
            self.bad_credentials = set(credentials)

    def is_refused(self, credential: str) -> bool:
        with self.lock:
            return credential in self.bad_credentials

    def set_quota(self, credential: str, remaining: int, reset_seconds: float) -> None:
        with self.lock:
            self.quotas[credential] = (remaining, reset_seconds)

    def quota_of(self, credential: str) -> tuple[int, float] | None:
        with self.lock:
            return self.quotas.get(credential)

    def stream_started(self) -> None:
        with self.lock:
            self.active_streams += 1

    def stream_ended(self, cancelled: bool) -> None:
        with self.lock:
            self.active_streams -= 1
            if cancelled:
                self.cancelled_streams += 1
            else:
                self.completed_streams += 1

    def stats(self) -> dict[str, int]:
        with self.lock:
            return {
                "active_streams": self.active_streams,
                "completed_streams": self.completed_streams,
                "cancelled_streams": self.cancelled_streams,
            }

    def reset(self) -> None:
        """Forget requests, failures, refused credentials and finished-stream counts.

        `active_streams` is kept: those streams are still running and will decrement it.
        """
        with self.lock:
            self.recorded.clear()
            self.failures.clear()
            self.bad_credentials.clear()
            self.quotas.clear()
            self.completed_streams = 0
            self.cancelled_streams = 0


STATE_KEY = web.AppKey("simulator_state", SimulatorState)
REQUEST_ID_KEY = web.RequestKey("simulator_request_id", str)


# --------------------------------------------------------------------------- responses


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, headers=headers, content_type="application/json")


def error_response(
    request: web.Request, status: int, error_type: str, message: str, retry_after: float | None = None
) -> web.Response:
    body = {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request[REQUEST_ID_KEY],
    }
    headers = {"retry-after": format_seconds(retry_after)} if retry_after is not None else None
    return json_response(body, status=status, headers=headers)


def format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def upstream_headers(quota: tuple[int, float] | None = None) -> dict[str, str]:
    """Headers that describe *our account* with the provider: the gateway must not pass them on.
    `quota` (requests remaining, seconds to the reset) stands in for the default requests quota."""
    reset = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = {"anthropic-organization-id": "sim-org"}
    for kind, limit in (
        ("requests", 4000),
        ("tokens", 480000),
        ("input-tokens", 400000),
        ("output-tokens", 80000),
    ):
        headers[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
        headers[f"anthropic-ratelimit-{kind}-remaining"] = str(limit - 1)
        headers[f"anthropic-ratelimit-{kind}-reset"] = reset
    if quota is not None:
        remaining, reset_seconds = quota
        headers["anthropic-ratelimit-requests-remaining"] = str(remaining)
        moment = datetime.now(UTC) + timedelta(seconds=reset_seconds)
        headers["anthropic-ratelimit-requests-reset"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return headers


async def add_upstream_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare hook: runs before headers go out, for plain and streamed answers alike."""
    response.headers["request-id"] = request.get(REQUEST_ID_KEY) or random_id("req_sim_")
    if request.path.startswith("/v1"):
        quota = request.app[STATE_KEY].quota_of(request.headers.get("x-api-key", ""))
        response.headers.update(upstream_headers(quota))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def record_api_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[REQUEST_ID_KEY] = random_id("req_sim_")
    if request.path.startswith("/v1"):
        raw = await request.read()  # cached by aiohttp, so handlers can read it again
        request.app[STATE_KEY].record(
            {
                "method": request.method,
                "path": request.path,
                "query_string": request.query_string,
                "headers": lower_case_headers(request),
                "body": raw.decode("utf-8", errors="replace"),
            }
        )
    return await handler(request)


def lower_case_headers(request: web.Request) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


# --------------------------------------------------------------------------- request checks


def credentials_error(request: web.Request) -> web.Response | None:
    """Anthropic's 401 when no credential is given or one of them was refused."""
    given = []
    if api_key := request.headers.get("x-api-key", "").strip():
        given.append(api_key)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        given.append(token.strip())
    if not given:
        return error_response(request, 401, "authentication_error", "x-api-key header is required")
    state = request.app[STATE_KEY]
    if any(state.is_refused(credential) for credential in given):
        return error_response(request, 401, "authentication_error", "invalid x-api-key")
    return None


class BadRequestError(Exception):
    """Turned into a 400 invalid_request_error by the handler."""


async def read_body(request: web.Request, required: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise BadRequestError("There was an error parsing the body of your request: not valid JSON") from exc
    if not isinstance(body, dict):
        raise BadRequestError("The request body must be a JSON object")
    for name, kind in required.items():
        if name not in body:
            raise BadRequestError(f"{name}: Field required")
        # bool is an int in Python, but `max_tokens: true` is not a number on the wire.
        if not isinstance(body[name], kind) or isinstance(body[name], bool):
            raise BadRequestError(f"{name}: Input has the wrong type")
    return body


def text_of(content: Any) -> str:
    """The text in a message content or system value (string or block list)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts = []
    for block in content:
        if isinstance(block, dict):
            for key in ("text", "thinking"):
                if isinstance(block.get(key), str):
                    parts.append(block[key])
            if block.get("type") == "tool_result":
                parts.append(text_of(block.get("content")))
    return "".join(parts)


def estimate_input_tokens(body: dict[str, Any]) -> int:
    characters = len(text_of(body.get("system")))
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            characters += len(text_of(message.get("content")))
    return max(1, characters // 4)


def first_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
                return block["text"]
    return ""


def choose_scenario(request: web.Request, body: dict[str, Any]) -> str:
    if scenario := request.headers.get("x-simulator-scenario", "").strip():
        return scenario
    user_messages = [m for m in body["messages"] if isinstance(m, dict) and m.get("role") == "user"]
    if user_messages:
        text = first_text(user_messages[-1].get("content")).strip()
        if text.startswith("scenario:"):
            # "scenario:NAME rest of the prompt"; a missing NAME is then refused as unknown.
            rest = text.removeprefix("scenario:").split(maxsplit=1)
            return rest[0] if rest else ""
    return "text"


def header_number(request: web.Request, name: str, default: float) -> float:
    raw = request.headers.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadRequestError(f"{name} must be a number") from None
    if value < 0:
        raise BadRequestError(f"{name} must not be negative")
    return value


def cache_counts(request: web.Request) -> tuple[int, int]:
    raw = request.headers.get("x-simulator-cache")
    if raw is None:
        return 0, 0
    try:
        create, read = (int(part) for part in raw.split(","))
    except ValueError:
        raise BadRequestError("x-simulator-cache must be CREATE,READ (two integers)") from None
    return create, read


# --------------------------------------------------------------------------- scripts


@dataclass
class Block:
    start: dict[str, Any]  # the content_block of content_block_start
    deltas: list[dict[str, Any]]
    final: dict[str, Any]  # the block as a non-stream answer shows it


@dataclass
class Script:
    """What one answer consists of, and how its stream behaves."""

    blocks: list[Block]
    stop_reason: str = "end_turn"
    stop_sequence: str | None = None  # the request's stop sequence the answer stopped at
    ending: str = "complete"  # or "error" (error event) or "truncated" (close without message_stop)
    delay: float = 0.0  # seconds before each delta
    ping_every: int = 0  # send a ping after this many deltas; 0 for never

    @property
    def output_tokens(self) -> int:
        return sum(len(block.deltas) for block in self.blocks)


def words(text: str) -> list[str]:
    """Split into word pieces that concatenate back to `text` ("Hello ", "from ", ...)."""
    pieces = text.split(" ")
    return [piece + " " for piece in pieces[:-1]] + [pieces[-1]]


def text_block(pieces: list[str]) -> Block:
    return Block(
        start={"type": "text", "text": ""},
        deltas=[{"type": "text_delta", "text": piece} for piece in pieces],
        final={"type": "text", "text": "".join(pieces)},
    )


def tool_use_block() -> Block:
    tool_id = random_id("toolu_sim_")
    arguments = orjson.dumps(TOOL_INPUT).decode()
    # Fixed-width pieces cut through keys and strings, as the real API's pieces do.
    chunks = [arguments[i : i + 10] for i in range(0, len(arguments), 10)]
    return Block(
        start={"type": "tool_use", "id": tool_id, "name": TOOL_NAME, "input": {}},
        deltas=[{"type": "input_json_delta", "partial_json": chunk} for chunk in chunks],
        final={"type": "tool_use", "id": tool_id, "name": TOOL_NAME, "input": dict(TOOL_INPUT)},
    )


def thinking_block() -> Block:
    pieces = words(THINKING_TEXT)
    return Block(
        start={"type": "thinking", "thinking": "", "signature": ""},
        deltas=[{"type": "thinking_delta", "thinking": piece} for piece in pieces]
        + [{"type": "signature_delta", "signature": THINKING_SIGNATURE}],
        final={"type": "thinking", "thinking": THINKING_TEXT, "signature": THINKING_SIGNATURE},
    )


def plain_answer(stop_sequences: object) -> Script:
    """The plain text answer, cut where the earliest of the request's stop sequences starts."""
    found = [
        (TEXT_ANSWER.index(sequence), sequence)
        for sequence in (stop_sequences if isinstance(stop_sequences, list) else [])
        if isinstance(sequence, str) and sequence and sequence in TEXT_ANSWER
    ]
    if not found:
        return Script([text_block(words(TEXT_ANSWER))])
    at, sequence = min(found)
    pieces = [piece for piece in words(TEXT_ANSWER[:at]) if piece]
    return Script([text_block(pieces)], stop_reason="stop_sequence", stop_sequence=sequence)


def build_script(scenario: str, request: web.Request, body: dict[str, Any]) -> Script:
    if scenario == "tool_use":
        return Script([tool_use_block()], stop_reason="tool_use")
    if scenario == "thinking":
        return Script([thinking_block(), text_block(words(THINKING_ANSWER))])
    if scenario == "error_mid_stream":
        return Script([text_block(words(TEXT_ANSWER))], ending="error")
    if scenario == "truncated":
        return Script([text_block(words(TEXT_ANSWER))], ending="truncated")
    if scenario == "slow":
        count = int(header_number(request, "x-simulator-deltas", DEFAULT_SLOW_DELTAS))
        delay = header_number(request, "x-simulator-delay-ms", DEFAULT_SLOW_DELAY_MS) / 1000
        pieces = [f"tick {i} " for i in range(1, count + 1)]
        return Script([text_block(pieces)], delay=delay, ping_every=SLOW_PING_EVERY)
    return plain_answer(body.get("stop_sequences"))


@dataclass
class Usage:
    input_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int

    def as_dict(self, output_tokens: int) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "output_tokens": output_tokens,
        }


def message_object(
    model: str,
    content: list[dict[str, Any]],
    stop_reason: str | None,
    usage: dict[str, int],
    stop_sequence: str | None = None,
) -> dict[str, Any]:
    return {
        "id": random_id("msg_sim_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage,
    }


# --------------------------------------------------------------------------- streaming


def sse(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


@contextmanager
def tracked_stream(state: SimulatorState) -> Iterator[None]:
    """Count a stream as active, then as completed or cancelled (client went away)."""
    state.stream_started()
    cancelled = False
    try:
        yield
    except (ConnectionError, asyncio.CancelledError):
        cancelled = True
        raise
    finally:
        state.stream_ended(cancelled)


async def stream_answer(request: web.Request, script: Script, model: str, usage: Usage) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
    await response.prepare(request)
    try:
        with tracked_stream(request.app[STATE_KEY]):
            await write_events(response, script, model, usage)
    except ConnectionError:
        # The client left; aiohttp treats a returned, unfinished response as a premature disconnect.
        return response
    await response.write_eof()
    return response


async def write_events(response: web.StreamResponse, script: Script, model: str, usage: Usage) -> None:
    # Each event is its own write, so it leaves at once: the gateway's relay is tested on that.
    async def send(event: dict[str, Any]) -> None:
        await response.write(sse(event))

    await send({"type": "message_start", "message": message_object(model, [], None, usage.as_dict(1))})
    await send({"type": "ping"})
    sent = 0
    for index, block in enumerate(script.blocks):
        await send({"type": "content_block_start", "index": index, "content_block": block.start})
        for delta in block.deltas:
            if script.ending != "complete" and sent == TRUNCATE_AFTER:
                await end_abruptly(send, script.ending)
                return
            if script.delay:
                await asyncio.sleep(script.delay)
            await send({"type": "content_block_delta", "index": index, "delta": delta})
            sent += 1
            if script.ping_every and sent % script.ping_every == 0:
                await send({"type": "ping"})
        await send({"type": "content_block_stop", "index": index})
    await send(
        {
            "type": "message_delta",
            "delta": {"stop_reason": script.stop_reason, "stop_sequence": script.stop_sequence},
            "usage": usage.as_dict(sent),
        }
    )
    await send({"type": "message_stop"})


async def end_abruptly(send: Callable[[dict[str, Any]], Awaitable[None]], ending: str) -> None:
    if ending == "error":
        await send({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    # "truncated": nothing more; the response ends cleanly without message_delta/message_stop.


# --------------------------------------------------------------------------- /v1 handlers


async def injected_failure(request: web.Request) -> web.StreamResponse | None:
    failure = request.app[STATE_KEY].take_failure()
    if failure is None:
        return None
    if failure.status == 0:
        # Drop the connection without a byte of answer, like a crashed or unreachable upstream.
        # aiohttp then fails to write the placeholder below and treats it as a client disconnect.
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=502)
    headers = {"retry-after": format_seconds(failure.retry_after)} if failure.retry_after is not None else {}
    if failure.body is not None:
        body = failure.body.encode() if isinstance(failure.body, str) else orjson.dumps(failure.body)
        return web.Response(body=body, status=failure.status, headers=headers, content_type=failure.content_type)
    error_type = error_type_of_status(failure.status)
    message = "Overloaded" if error_type == "overloaded_error" else f"Simulated failure ({failure.status})"
    return error_response(request, failure.status, error_type, message, failure.retry_after)


async def messages(request: web.Request) -> web.StreamResponse:
    if failure := await injected_failure(request):
        return failure
    if refused := credentials_error(request):
        return refused
    try:
        body = await read_body(request, {"model": str, "messages": list, "max_tokens": int})
        scenario = choose_scenario(request, body)
        if scenario not in SCENARIOS:
            raise BadRequestError(f"unknown simulator scenario {scenario!r}; known: {', '.join(sorted(SCENARIOS))}")
        if scenario in ERROR_SCENARIOS:
            return error_response(request, *ERROR_SCENARIOS[scenario])
        script = build_script(scenario, request, body)
        usage = Usage(estimate_input_tokens(body), *cache_counts(request))
    except BadRequestError as exc:
        return error_response(request, 400, "invalid_request_error", str(exc))
    if body.get("stream") is True:
        return await stream_answer(request, script, body["model"], usage)
    if scenario == "error_mid_stream":
        return error_response(request, 529, "overloaded_error", "Overloaded")
    if script.delay:
        await asyncio.sleep(script.delay * script.output_tokens)
    content = [block.final for block in script.blocks]
    return json_response(
        message_object(
            body["model"], content, script.stop_reason, usage.as_dict(script.output_tokens), script.stop_sequence
        )
    )


async def count_tokens(request: web.Request) -> web.Response:
    if refused := credentials_error(request):
        return refused
    try:
        body = await read_body(request, {"model": str, "messages": list})
    except BadRequestError as exc:
        return error_response(request, 400, "invalid_request_error", str(exc))
    return json_response({"input_tokens": estimate_input_tokens(body)})


async def list_models(request: web.Request) -> web.Response:
    if refused := credentials_error(request):
        return refused
    return json_response({"data": MODELS, "has_more": False, "first_id": MODELS[0]["id"], "last_id": MODELS[-1]["id"]})


async def get_model(request: web.Request) -> web.Response:
    if refused := credentials_error(request):
        return refused
    model_id = request.match_info["model_id"]
    for model in MODELS:
        if model["id"] == model_id:
            return json_response(model)
    return error_response(request, 404, "not_found_error", f"model: {model_id}")


async def not_found(request: web.Request) -> web.Response:
    return error_response(request, 404, "not_found_error", f"Not found: {request.method} {request.path}")


# --------------------------------------------------------------------------- control handlers


async def control_requests(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    if request.method == "DELETE":
        state.clear_requests()
        return json_response({"cleared": True})
    return json_response(state.requests())


async def control_fail(request: web.Request) -> web.Response:
    try:
        spec = orjson.loads(await request.read())
        failure = Failure(
            status=int(spec["status"]),
            remaining=int(spec.get("count", 1)),
            retry_after=spec.get("retry_after"),
            body=spec.get("body"),
            content_type=str(spec.get("content_type", "application/json")),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return json_response({"error": 'expected {"status": int, "count"?: int, "retry_after"?, "body"?}'}, 400)
    request.app[STATE_KEY].add_failure(failure)
    return json_response({"queued": True})


async def control_bad_credentials(request: web.Request) -> web.Response:
    try:
        credentials = orjson.loads(await request.read())["credentials"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return json_response({"error": 'expected {"credentials": [str, ...]}'}, 400)
    request.app[STATE_KEY].set_bad_credentials([str(c) for c in credentials])
    return json_response({"credentials": sorted(credentials)})


async def control_stats(request: web.Request) -> web.Response:
    return json_response(request.app[STATE_KEY].stats())


async def control_reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return json_response({"reset": True})


# --------------------------------------------------------------------------- app and runners


def build_simulator_app(state: SimulatorState | None = None) -> web.Application:
    app = web.Application(middlewares=[record_api_requests], client_max_size=32 * 1024 * 1024)
    app[STATE_KEY] = state if state is not None else SimulatorState()
    app.on_response_prepare.append(add_upstream_headers)
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model_id}", get_model)
    app.router.add_route("GET", "/_simulator/requests", control_requests)
    app.router.add_route("DELETE", "/_simulator/requests", control_requests)
    app.router.add_post("/_simulator/fail", control_fail)
    app.router.add_post("/_simulator/bad_credentials", control_bad_credentials)
    app.router.add_get("/_simulator/stats", control_stats)
    app.router.add_post("/_simulator/reset", control_reset)
    # Last: everything else (other paths, other methods) answers in Anthropic's 404 shape.
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


def run_simulator(host: str = "127.0.0.1", port: int = 8100, announce: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted (the `simulate_upstream` command).

    `announce` is called with the base URL once the socket listens, so what it prints is true.
    """

    def on_listening(_banner: str) -> None:
        if announce is not None:
            announce(f"http://{host}:{port}")

    # handler_cancellation: a client that leaves mid-stream cancels its handler at once, so the
    # stats show it even while the stream is sleeping between deltas.
    web.run_app(build_simulator_app(), host=host, port=port, print=on_listening, handler_cancellation=True)


class SimulatorThread:
    """The simulator on its own event loop in a daemon thread, for tests.

    `start()` returns once it listens; `base_url` is then usable by any client. The control
    methods act on the shared state directly (no HTTP), so they are safe from async tests too.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.state = SimulatorState()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> SimulatorThread:
        self._thread = threading.Thread(target=self._run, name="anthropic-simulator", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise RuntimeError("the simulator did not start") from self._error
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join()
        self._thread = None

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            with asyncio.Runner() as runner:
                runner.run(self._serve())
        except BaseException as exc:  # reported by start(); a thread must not die loudly
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        runner = web.AppRunner(build_simulator_app(self.state), handler_cancellation=True, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            self.port = runner.addresses[0][1]  # the real one when asked for port 0
            self._ready.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()
            # The connections it closed finish closing on the loop's next turn; without one, the
            # loop ends first and their sockets are left to the garbage collector (ResourceWarning).
            await asyncio.sleep(0)

    # The controls, on the shared state.

    def requests(self) -> list[dict[str, Any]]:
        return self.state.requests()

    def clear(self) -> None:
        self.state.clear_requests()

    def reset(self) -> None:
        self.state.reset()

    def fail_next(
        self,
        status: int,
        count: int = 1,
        retry_after: float | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> None:
        """The next `count` message requests answer `status` (with `body` as given, if any)."""
        self.state.add_failure(Failure(status, count, retry_after, body, content_type))

    def set_bad_credentials(self, credentials: list[str]) -> None:
        self.state.set_bad_credentials(credentials)

    def set_quota(self, credential: str, remaining: int, reset_seconds: float) -> None:
        """Answers to `credential` report `remaining` requests left until `reset_seconds` from now."""
        self.state.set_quota(credential, remaining, reset_seconds)

    def stats(self) -> dict[str, int]:
        return self.state.stats()
