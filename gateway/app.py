"""The gateway's ASGI application, mounted on `/v1` by llmapi.asgi.

Each request: find the endpoint, authenticate, ask the limiter (before the body: a key over its
windows uploads nothing), read the body (bounded), then run the endpoint while watching for the
client to go away. Errors of our own become Anthropic-shaped responses here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgspec
import orjson
from django.conf import settings

from gateway import catalog
from gateway.auth import authenticate
from gateway.cache import invalidation_listener
from gateway.errors import GatewayError, error_body, new_request_id, relayed_error, sse_error_event
from gateway.gc_tuning import tune_garbage_collection
from gateway.http import (
    ClientDisconnectedError,
    Headers,
    Message,
    Receive,
    Request,
    Scope,
    Send,
    inflight_bodies,
    read_body,
    request_from_scope,
)
from gateway.key_usage import KEY_USAGE_PATH, key_usage_report, tokens_today
from gateway.limits import UNKNOWN, Decision, close_limiter, limiter, token_charge
from gateway.metrics import OPEN_STREAMS
from gateway.providers import UpstreamResponse, adapter_for
from gateway.ratelimit_headers import limit_headers, rate_limited
from gateway.relay import RefusedAnswer, SseUsageReader, UpstreamAnswer, open_upstream, relayed_headers
from gateway.request_log import RequestOutcome, request_log
from gateway.routing import Candidate, route_table
from gateway.shutdown import shutdown_state
from gateway.side_redis import close_side_redis
from gateway.tokens import admission_estimate, estimate_input_tokens
from gateway.upstream_client import close_client_session
from gateway.usage.record import UsageRecord
from gateway.usage.writer import emit, emit_refusal, emit_token_charge, usage_writer
from gateway.wire import JSON_CONTENT_TYPE, SSE_CONTENT_TYPE, error_type_of_status
from keys.selectors import KeyPrincipal

logger = logging.getLogger(__name__)

JSON_HEADERS: Headers = [(b"content-type", JSON_CONTENT_TYPE)]


class Responder:
    """Sends the response, adding the headers every /v1 response carries, and keeps what the
    request's log line will say (gateway/request_log.py)."""

    def __init__(self, send: Send, request: Request) -> None:
        self._asgi_send = send
        self.request_id = request.request_id
        self.outcome = RequestOutcome(request.request_id, request.method, request.path, time.perf_counter())
        self.started = False
        self.limit_headers: Headers | None = None  # set once the limiter has been asked
        self.admission_entry = ""  # the usage stream entry the limiter wrote ahead, if it did
        self.decision: Decision | None = None  # the limiter's, once asked
        self.input_estimate = 0  # input tokens the admission charged, before the body was read

    async def start(self, status: int, headers: Headers) -> None:
        self.started = True
        self.outcome.status = status
        head = [*headers, *(self.limit_headers or ()), (b"request-id", self.request_id.encode())]
        # Sent once: an open stream holds its responder for minutes, 10,000 of them at once.
        self.limit_headers = self.decision = None
        await self._send({"type": "http.response.start", "status": status, "headers": head})

    async def ask_limiter(self, principal: KeyPrincipal, mode: str, input_estimate: int = 0) -> Decision:
        """Ask the limiter (mode admit, guard or peek); refuse with 429 if it says no."""
        decision = await limiter().decide(principal, mode, self.request_id, input_estimate)
        self.decision = decision
        self.outcome.limiter_mode = mode
        self.outcome.limiter_outcome = limiter_outcome(decision)
        self.limit_headers = limit_headers(decision)
        self.admission_entry = decision.admission_entry
        if not decision.admitted:
            raise rate_limited(decision, principal)
        if decision.tokens:  # charged (not when the limiter was away, nor without token limits)
            self.input_estimate = input_estimate
        return decision

    def charge_tokens(self, principal: KeyPrincipal) -> None:
        """Correct the admission's input estimate to the tokens the answer used, and add its output."""
        if principal.input_tokens_per_minute is None and principal.output_tokens_per_minute is None:
            return  # no token windows to keep
        record = self.outcome.record  # none: the request never reached a backend
        used_input = record.input_tokens + record.cache_creation_input_tokens if record else 0
        used_output = record.output_tokens if record else 0
        if self.input_estimate or used_output:
            emit_token_charge(token_charge(principal, used_input - self.input_estimate, used_output))

    async def body(self, chunk: bytes, *, more: bool = True) -> None:
        await self._send({"type": "http.response.body", "body": chunk, "more_body": more})

    async def _send(self, message: Message) -> None:
        try:
            await self._asgi_send(message)
        except OSError:  # the server's way of saying the client has gone
            raise ClientDisconnectedError from None

    async def whole(self, status: int, headers: Headers, body: bytes) -> None:
        await self.start(status, [*headers, (b"content-length", str(len(body)).encode())])
        await self.body(body, more=False)

    async def json(self, status: int, payload: object) -> None:
        await self.whole(status, JSON_HEADERS, orjson.dumps(payload))

    async def error(self, error: GatewayError) -> None:
        body = error_body(error.error_type, error.message, self.request_id)
        await self.whole(error.status, [*JSON_HEADERS, *error.headers], body)


def limiter_outcome(decision: Decision) -> str:
    if decision is UNKNOWN:  # Redis unreachable: failing open
        return "unchecked"
    return "admitted" if decision.admitted else "refused"


Endpoint = Callable[[Request, KeyPrincipal, Responder], Awaitable[None]]


def parse_body(body: bytes, required: dict[str, type]) -> dict[str, object]:
    """The JSON object of a request, with the fields we rely on checked; the rest is the upstream's."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise GatewayError(400, NOT_JSON_MESSAGE) from None
    if not isinstance(payload, dict):
        raise GatewayError(400, NOT_AN_OBJECT_MESSAGE)
    check_fields(payload, required)
    return payload


def check_fields(payload: dict[str, object], required: dict[str, type]) -> None:
    for name, expected in required.items():
        if name not in payload:
            raise GatewayError(400, f"{name}: Field required")
        value = payload[name]
        if isinstance(value, bool) or not isinstance(value, expected):
            raise GatewayError(400, f"{name}: Input should be a valid {TYPE_WORDS[expected]}")
        if value == "":
            raise GatewayError(400, f"{name}: String should have at least 1 character")


NOT_JSON_MESSAGE = "The request body is not valid JSON."
NOT_AN_OBJECT_MESSAGE = "The request body must be a JSON object."
TYPE_WORDS = {str: "string", list: "list", int: "integer"}
MESSAGE_FIELDS = {"model": str, "messages": list, "max_tokens": int}
COUNT_FIELDS = {"model": str, "messages": list}


class MessageFields(msgspec.Struct):
    """What the gateway reads of a Messages request. The rest (a Claude Code turn sends some 50 KB of
    tools and history) is checked for JSON syntax and skipped without building a Python object."""

    model: Any = msgspec.UNSET
    stream: Any = msgspec.UNSET
    max_tokens: Any = msgspec.UNSET
    messages: msgspec.Raw = msgspec.UNSET
    metadata: Any = msgspec.UNSET  # a few dozen bytes: `user_id` names Claude Code's session


_message_fields_decoder = msgspec.json.Decoder(MessageFields)


def _stand_in_for(raw: msgspec.Raw | msgspec.UnsetType) -> object:
    """Only the kind of `messages` is checked here: an empty list stands for a list, None for anything else."""
    if raw is msgspec.UNSET:
        return raw
    return [] if memoryview(raw)[:1] == b"[" else None


def read_message_fields(body: bytes) -> MessageFields:
    """The fields of a Messages request, checked with the same rules and words as `parse_body`."""
    try:
        if not body.isascii():
            body.decode()  # the skipped parts must be UTF-8 too, as a full parse would insist
        fields = _message_fields_decoder.decode(body)
    except msgspec.ValidationError:  # a subclass of DecodeError: the JSON is fine, its top level is not an object
        raise GatewayError(400, NOT_AN_OBJECT_MESSAGE) from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):  # nested too deep to parse, as orjson says too
        raise GatewayError(400, NOT_JSON_MESSAGE) from None
    present = {"model": fields.model, "max_tokens": fields.max_tokens, "messages": _stand_in_for(fields.messages)}
    check_fields({name: value for name, value in present.items() if value is not msgspec.UNSET}, MESSAGE_FIELDS)
    return fields


async def candidates_for(model: str, session: str = "") -> list[Candidate]:
    table = await route_table()
    if not table.matching_routes(model):
        raise GatewayError(404, f"model: {model}")
    candidates = table.candidates(model, session)
    if not candidates:
        raise GatewayError(503, f"No backend is configured for model {model} yet. Please retry later.")
    return candidates


def body_maker(request: Request, model: str) -> Callable[[Candidate], bytes]:
    """The body for each backend: byte for byte when it gets the requested name, else re-encoded."""

    def body_for(candidate: Candidate) -> bytes:
        if candidate.upstream_model == model:
            return request.body
        # Rare (a renamed target): parse again rather than hold the parsed body for a whole answer.
        return orjson.dumps({**orjson.loads(request.body), "model": candidate.upstream_model})

    return body_for


SESSION_HEADER = b"x-claude-code-session-id"
SESSION_MARK = "_session_"  # Claude Code's user_id: user_{hash}_account_{uuid}_session_{uuid}


def session_of(request: Request, metadata: object, principal: KeyPrincipal) -> str:
    """The conversation a request belongs to, for keeping it on one backend (gateway/routing.py):
    Claude Code's session header, else the session in `metadata.user_id`, else the key."""
    if header := request.headers.get(SESSION_HEADER):
        return header.decode("latin-1")[:200]
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user_id, str):
        if user_id.startswith("{"):  # newer Claude Code: a JSON object with a session_id
            with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
                if isinstance(session := orjson.loads(user_id).get("session_id"), str) and session:
                    return session[:200]
        elif SESSION_MARK in user_id:
            return user_id.rsplit(SESSION_MARK, 1)[1][:200]
    return f"key:{principal.key_id}"


async def messages(request: Request, principal: KeyPrincipal, responder: Responder) -> None:
    fields = read_message_fields(request.body)
    model, wants_stream = str(fields.model), fields.stream is True
    session = session_of(request, fields.metadata, principal)
    started = time.perf_counter()
    record = UsageRecord(
        request_id=request.request_id,
        key_id=principal.key_id,
        user_id=principal.user_id,
        requested_model=model,
        stream=wants_stream,
    )
    responder.outcome.record = record

    async def give_back() -> None:
        await give_back_if_counted(principal, "admit", responder)

    try:
        candidates = await candidates_for(model, session)
        answer = await open_upstream(
            request=request, candidates=candidates, body_for=body_maker(request, model), session=session
        )
        inflight_bodies.let_go(request)  # sent: not held for the length of the answer (10,000 streams x 50 KB)
        if isinstance(answer, RefusedAnswer):
            record.status, record.error_type = answer.status, error_type_of_status(answer.status)
            await give_back()  # no backend could answer: an outage costs no quota
            await relay_error(responder, answer.status, answer.headers, answer.body)
            return
        record.upstream = answer.candidate.upstream.name
        record.upstream_model = answer.candidate.upstream_model
        await relay_answer(answer, responder, record, requested_model=model, started=started, give_back=give_back)
    except GatewayError as error:
        record.status, record.error_type = error.status, error.error_type
        raise
    except asyncio.CancelledError:
        # Cancelled: the client left, or the shutdown's grace period ran out while it streamed.
        record.client_disconnected = not shutdown_state.draining
        raise
    except ClientDisconnectedError:
        record.client_disconnected = True
        raise
    finally:
        record.duration_ms = (time.perf_counter() - started) * 1000
        emit(record)


async def relay_answer(
    answer: UpstreamAnswer,
    responder: Responder,
    record: UsageRecord,
    *,
    requested_model: str,
    started: float,
    give_back: Callable[[], Awaitable[None]],
) -> None:
    response = answer.response
    record.status = response.status
    shown_model = None if answer.candidate.upstream_model == requested_model else requested_model
    try:
        if response.headers.get("content-type", "").startswith(SSE_CONTENT_TYPE.decode()):
            await relay_stream(response, responder, SseUsageReader(record, shown_model=shown_model, started=started))
        else:
            body = await read_upstream_body(response)
            if response.status >= 400:
                record.error_type = error_type_of_status(response.status)
                if not await relay_error(responder, response.status, relayed_headers(response), body):
                    await give_back()  # not an answer in Anthropic's shape: it costs no quota
                return
            if response.status == 200:
                body = read_message_usage(body, record, shown_model)
            await responder.whole(response.status, relayed_headers(response), body)
    finally:
        # An answer cut short (client gone, failure) must not return its connection to the pool.
        if response.content.at_eof():
            response.release()
        else:
            response.close()


async def relay_error(responder: Responder, status: int, headers: Headers, body: bytes) -> bool:
    """A backend's error, in Anthropic's shape and with our request id; True if the backend wrote it so."""
    relayed = relayed_error(status, body, responder.request_id)
    headers = [(name, value) for name, value in headers if name != b"content-type"]
    await responder.whole(status, [*JSON_HEADERS, *headers], relayed.body)
    return relayed.anthropic_shaped


async def read_upstream_body(response: UpstreamResponse) -> bytes:
    try:
        return await response.read()
    except (aiohttp.ClientError, TimeoutError):
        raise GatewayError(503, "The backend connection failed before the answer was complete.") from None


def read_message_usage(body: bytes, record: UsageRecord, shown_model: str | None) -> bytes:
    """Usage from a whole message; its model renamed to the requested name if need be."""
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if not isinstance(message, dict):
        return body
    record.take_usage(message.get("usage"))
    if shown_model is None:
        return body
    message["model"] = shown_model
    return orjson.dumps(message)


async def relay_stream(response: UpstreamResponse, responder: Responder, reader: SseUsageReader) -> None:
    with OPEN_STREAMS.track_inprogress():
        await relay_events(response, responder, reader)


async def relay_events(response: UpstreamResponse, responder: Responder, reader: SseUsageReader) -> None:
    await responder.start(response.status, relayed_headers(response))
    failure = "The backend stream ended before message_stop."
    try:
        async for chunk in response.content.iter_any():
            if out := reader.feed(chunk):
                await responder.body(out)
    except (aiohttp.ClientError, TimeoutError) as exc:
        failure = f"The backend connection failed mid-stream ({type(exc).__name__})."
    except asyncio.CancelledError:
        if shutdown_state.draining:
            await end_stream_cut_by_shutdown(responder, reader)
        raise
    if not reader.finished:
        reader.record.error_type = reader.record.error_type or "api_error"
        event = sse_error_event("api_error", failure, responder.request_id)
        await responder.body(reader.unsent() + event)
    await responder.body(b"", more=False)


async def end_stream_cut_by_shutdown(responder: Responder, reader: SseUsageReader) -> None:
    """The grace period ran out mid-stream: end the stream with an error the client's SDK raises
    (and may retry), rather than a connection that merely stops."""
    reader.record.error_type = "overloaded_error"
    message = "The server restarted before the stream was complete; send the request again."
    with contextlib.suppress(ClientDisconnectedError):
        await responder.body(reader.unsent() + sse_error_event("overloaded_error", message, responder.request_id))
        await responder.body(b"", more=False)


async def count_tokens(request: Request, principal: KeyPrincipal, responder: Responder) -> None:
    payload = parse_body(request.body, COUNT_FIELDS)
    model = str(payload["model"])
    candidates = [candidate for candidate in await candidates_for(model) if counts_tokens(candidate)]
    try:
        answer = await open_upstream(request=request, candidates=candidates, body_for=body_maker(request, model))
    except GatewayError:
        answer = None  # no backend answered: an estimate serves the client better than an error
    if isinstance(answer, UpstreamAnswer):
        response = answer.response
        body = await read_upstream_body(response)
        if not (response.status == 404 and b"model" not in body):  # a 404 without "model": no counter
            if response.status >= 400:
                await relay_error(responder, response.status, relayed_headers(response), body)
            else:
                await responder.whole(response.status, relayed_headers(response), body)
            return
    await responder.json(200, {"input_tokens": estimate_input_tokens(payload)})


def counts_tokens(candidate: Candidate) -> bool:
    return adapter_for(candidate.upstream.kind).COUNTS_TOKENS


async def list_models(request: Request, principal: KeyPrincipal, responder: Responder) -> None:
    await responder.json(200, catalog.model_page(await route_table(), request.query_string))


async def get_model(request: Request, principal: KeyPrincipal, responder: Responder) -> None:
    model_id = request.path.removeprefix("/v1/models/")
    await responder.json(200, catalog.model_lookup(await route_table(), model_id))


async def key_usage(request: Request, principal: KeyPrincipal, responder: Responder) -> None:
    """The key's plan, windows and tokens today (gateway/key_usage.py), for the key itself."""
    tokens = await tokens_today(principal)
    await responder.json(200, key_usage_report(principal, responder.decision or UNKNOWN, tokens))


MODEL_PATH = re.compile(r"^/v1/models/[^/]+$")
# Each endpoint with its method and its limiter mode: messages count toward the plan's windows,
# the others only toward the guard.
ENDPOINTS: dict[str, tuple[str, Endpoint, str]] = {
    "/v1/messages": ("POST", messages, "admit"),
    "/v1/messages/count_tokens": ("POST", count_tokens, "guard"),
    "/v1/models": ("GET", list_models, "guard"),
    KEY_USAGE_PATH: ("GET", key_usage, "guard"),
}


def find_endpoint(request: Request) -> tuple[Endpoint, str]:
    path = request.path
    method, endpoint, mode = ENDPOINTS.get(path) or (
        ("GET", get_model, "guard") if MODEL_PATH.match(path) else (None, None, "")
    )
    if endpoint is None:
        raise GatewayError(404, f"Not found: {request.method} {request.path}")
    if request.method != method:
        raise GatewayError(
            405, f"Method {request.method} is not allowed here; use {method}.", [(b"allow", method.encode())]
        )
    return endpoint, mode


async def serve(request: Request, receive: Receive, responder: Responder) -> None:
    endpoint, mode = find_endpoint(request)
    try:
        principal = await authenticate(request.headers, request.client)  # before the body: refusals cost no upload
    except GatewayError as error:
        emit_refusal(status=error.status)  # counted, with no key to count it against
        raise
    responder.outcome.principal = principal
    # Decided (and, for a message, counted) before the body is read, in the one round trip a
    # request has for its limits: a key over a window, or with all its slots in flight, is
    # refused without uploading anything. What turns out not to count is given back below.
    try:
        await responder.ask_limiter(principal, mode, input_estimate_of(request, principal) if mode == "admit" else 0)
    except GatewayError as error:  # refused before the body, so with no model to name
        emit_refusal(status=error.status, key_id=principal.key_id, user_id=principal.user_id)
        raise
    try:
        try:
            request.body = await read_body(request, receive, settings.GATEWAY_MAX_BODY_BYTES)
        except ClientDisconnectedError:  # an upload cut short never reached a model
            await give_back_if_counted(principal, mode, responder)
            raise
        await run_until_disconnect(endpoint(request, principal, responder), receive)
    except GatewayError:  # refusals of our own (400, 404, 413, 503...) cost no quota
        await give_back_if_counted(principal, mode, responder)
        raise
    finally:
        inflight_bodies.let_go(request)
        if mode == "admit":
            limiter().release(principal, request.request_id)
            responder.charge_tokens(principal)


def input_estimate_of(request: Request, principal: KeyPrincipal) -> int:
    """The input tokens a message is charged at admission, where the plan limits them."""
    if principal.input_tokens_per_minute is None:
        return 0
    return admission_estimate(request.headers.get(b"content-length"), principal.input_tokens_per_minute)


async def give_back_if_counted(principal: KeyPrincipal, mode: str, responder: Responder) -> None:
    if mode != "admit":
        return  # the guard counts every request it lets through, answered or not
    # Shielded: a cancelled request must still give back what it took.
    decision = await asyncio.shield(limiter().give_back(principal, responder.request_id, responder.admission_entry))
    if decision.windows:  # the headers show the windows without this request
        responder.limit_headers = limit_headers(decision)


async def run_until_disconnect(work: Awaitable[None], receive: Receive) -> None:
    """Run `work` in this task, cancelling it (and so the upstream request) if the client goes away.

    One watcher task per request, not two: the work stays in the server's own task.
    """
    this_task = asyncio.current_task()
    watcher = asyncio.ensure_future(cancel_on_disconnect(receive, this_task))
    try:
        await work
    except asyncio.CancelledError:
        if not watcher.done() or watcher.cancelled():
            raise  # cancelled by the server (shutting down), not by our watcher
        this_task.uncancel()  # the client left: the work is abandoned, the request is over
    finally:
        watcher.cancel()


async def cancel_on_disconnect(receive: Receive, task: asyncio.Task) -> None:
    # The body has been read in full, so the next message can only be the disconnect.
    while (await receive())["type"] != "http.disconnect":
        pass
    task.cancel()


async def lifespan(receive: Receive, send: Send) -> None:
    full_collections = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await invalidation_listener.start()
            full_collections = tune_garbage_collection()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if full_collections is not None:
                full_collections.cancel()
            unfinished = await shutdown_state.wait_for_open_requests()
            if unfinished:
                logger.error("shutdown: %d requests had not ended; their usage may be missing", unfinished)
            await invalidation_listener.stop()
            await close_client_session()
            await close_limiter()
            await close_side_redis()
            await usage_writer.close()
            request_log.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    await invalidation_listener.start()  # no-op once started; servers without lifespan start it here
    request = request_from_scope(scope, new_request_id())
    responder = Responder(send, request)
    shutdown_state.request_started()
    try:
        await serve(request, receive, responder)
    except GatewayError as error:
        await answer_with_error(responder, error)
    except ClientDisconnectedError:
        pass  # the client has gone; nobody to answer
    except asyncio.CancelledError:
        if not shutdown_state.draining:
            raise
        # The grace period ran out: the request has ended as well as it could, and its
        # accounting is done; the server need not log a cancellation it asked for.
    except Exception:
        logger.exception("unexpected error in request %s", request.request_id)
        await answer_with_error(responder, GatewayError(500, "Internal server error."))
    finally:
        shutdown_state.request_ended()
        request_log.add(responder.outcome)


async def answer_with_error(responder: Responder, error: GatewayError) -> None:
    if not responder.started:  # once a response has begun, its status can no longer change
        with contextlib.suppress(ClientDisconnectedError):
            await responder.error(error)
