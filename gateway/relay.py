"""Putting a request to the backends: failover before the first byte, then relaying the answer.

Retries happen only before anything reaches the client (DESIGN.md rule 5). After that, bytes
go out as they arrive; the SSE events are read on the side only to pick up usage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp
import orjson
from django.conf import settings

from gateway.errors import GatewayError
from gateway.http import Request
from gateway.metrics import upstream_failed
from gateway.providers import CredentialUnusable, UpstreamResponse, adapter_for
from gateway.routing import Candidate, Credential, health
from gateway.services import upstream_credential_disable
from gateway.usage.record import UsageRecord
from gateway.wire import (
    COOLDOWN_STATUSES,
    CREDENTIAL_REFUSED_STATUS,
    RESPONSE_HEADER_PREFIXES_NOT_FORWARDED,
    RESPONSE_HEADERS_NOT_FORWARDED,
    RETRYABLE_STATUSES,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Attempt:
    candidate: Candidate
    credential: Credential


@dataclass(slots=True)
class UpstreamAnswer:
    """The upstream response that will be relayed, and who gave it."""

    response: UpstreamResponse  # Anthropic's shape, whatever the backend's kind (gateway/providers)
    candidate: Candidate


@dataclass(frozen=True, slots=True)
class RefusedAnswer:
    """The last backend's error when none could answer (429, 5xx, 529): relayed as it said it."""

    status: int
    headers: list[tuple[bytes, bytes]]  # retry-after, when the backend gave one
    body: bytes


def plan_attempts(candidates: list[Candidate], *, session: str = "", family_first: bool = False) -> list[Attempt]:
    """Every (backend, credential) pair that may be tried now, in order.

    A session's pairs come in its own order (gateway/routing.py), so that it keeps the backend
    and credential whose prompt cache it warmed. With `family_first`, the pairs of the first
    candidate's family come before all others: a request carrying thinking blocks moves to
    another provider only when none of the one that signed them can serve.

    When all are resting (cooling down or circuit open), the one that rests the shortest is
    tried anyway: demotion must never turn into an outage of our own making.
    """
    now = time.monotonic()
    ready: list[Attempt] = []
    resting: list[tuple[float, Attempt]] = []
    for candidate in candidates:
        for credential in health.credentials_for(candidate.upstream, session):
            available_at = health.available_at(candidate.upstream, credential)
            attempt = Attempt(candidate, credential)
            if available_at <= now:
                ready.append(attempt)
            else:
                resting.append((available_at, attempt))
    if family_first and ready:
        family = candidates[0].upstream.family
        ready.sort(key=lambda attempt: attempt.candidate.upstream.family != family)  # stable: order kept within
    if ready or not resting:
        return ready
    return [min(resting, key=lambda pair: pair[0])[1]]


def carries_thinking_blocks(body: bytes) -> bool:
    # A cheap look at the raw bytes; a false positive only puts one family's backends first.
    return b'"signature"' in body or b'"redacted_thinking"' in body


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(float(value) * scale, 0.0)
            except ValueError:
                continue
    return None


async def open_upstream(
    *,
    request: Request,
    candidates: list[Candidate],
    body_for: Callable[[Candidate], bytes],
    session: str = "",
) -> UpstreamAnswer | RefusedAnswer:
    """Try the backends in order until one gives an answer worth relaying.

    When none does, the last backend's error is the answer, as Anthropic would have sent it
    (only when no backend answered at all is the 503 our own).
    """
    deadline = time.monotonic() + settings.GATEWAY_FAILOVER_DEADLINE_SECONDS
    # The body is looked at only where failover could cross families: scanning a Claude Code
    # request (about 50 KB) twice costs more than the rest of planning.
    mixed_families = len({candidate.upstream.family for candidate in candidates}) > 1
    family_first = mixed_families and carries_thinking_blocks(request.body)
    attempts = plan_attempts(candidates, session=session, family_first=family_first)
    last_refusal: RefusedAnswer | None = None
    failures: list[str] = []
    disabled_a_credential = False
    for attempt in attempts:
        if time.monotonic() >= deadline:
            failures.append("deadline reached")
            break
        upstream = attempt.candidate.upstream
        try:
            response = await _send(request, attempt, body_for(attempt.candidate))
        except CredentialUnusable as exc:
            health.cool_down(attempt.credential, settings.GATEWAY_CREDENTIAL_REFUSED_COOLDOWN_SECONDS, str(exc))
            upstream_failed(upstream.name, "credential_refused")
            failures.append(f"{upstream.name}: {exc}")
            logger.warning(
                "upstream %s credential #%s unusable for %s: %s",
                upstream.name,
                attempt.credential.id,
                request.request_id,
                exc,
            )
            continue
        except (aiohttp.ClientError, TimeoutError) as exc:
            health.record_failure(upstream, f"unreachable ({type(exc).__name__})")
            upstream_failed(upstream.name, "unreachable")
            failures.append(f"{upstream.name}: {type(exc).__name__}")
            logger.warning("upstream %s unreachable for %s: %r", upstream.name, request.request_id, exc)
            continue
        status = response.status
        if status == CREDENTIAL_REFUSED_STATUS:
            # One request never takes out more than one credential: a request that every
            # credential refuses says more about the request than about the credentials.
            disabled_a_credential |= await _refused_credential(
                attempt, response, request.request_id, may_disable=not disabled_a_credential
            )
            upstream_failed(upstream.name, "credential_refused")
            failures.append(f"{upstream.name}: credential refused")
            continue
        if status in RETRYABLE_STATUSES:
            body = await _read_and_release(response)
            wait = retry_after_seconds(response.headers)
            if status in COOLDOWN_STATUSES:
                why = f"the backend answered {status}"
                health.cool_down(attempt.credential, wait or settings.GATEWAY_DEFAULT_COOLDOWN_SECONDS, why)
            else:
                health.record_failure(upstream, f"answered {status}")
            upstream_failed(upstream.name, str(status))
            last_refusal = RefusedAnswer(status, _retry_after_header(wait), body)
            failures.append(f"{upstream.name}: {status}")
            logger.info("upstream %s answered %s for %s", upstream.name, status, request.request_id)
            continue
        health.record_success(upstream, attempt.credential)
        health.note_quota(attempt.credential, response.headers)
        return UpstreamAnswer(response, attempt.candidate)
    if last_refusal is not None:
        return last_refusal
    logger.warning("no backend answered %s: %s", request.request_id, "; ".join(failures) or "none usable")
    raise GatewayError(503, "No backend is available to serve this request right now. Please retry shortly.")


async def _send(request: Request, attempt: Attempt, body: bytes) -> UpstreamResponse:
    upstream = attempt.candidate.upstream
    return await adapter_for(upstream.kind).send(request, upstream, attempt.credential, body)


async def _read_and_release(response: UpstreamResponse) -> bytes:
    try:
        return await response.read()
    except (aiohttp.ClientError, TimeoutError):
        return b""
    finally:
        response.release()


def _retry_after_header(wait: float | None) -> list[tuple[bytes, bytes]]:
    return [] if wait is None else [(b"retry-after", str(max(1, round(wait))).encode())]


async def _refused_credential(
    attempt: Attempt, response: UpstreamResponse, request_id: str, *, may_disable: bool
) -> bool:
    """Our credential was refused (401): it rests and is probed again later; never the client's error.

    Only refusals on GATEWAY_CREDENTIAL_REFUSALS_TO_DISABLE distinct requests within the window
    disable it for good. Returns whether this refusal disabled it.
    """
    body = await _read_and_release(response)
    upstream = attempt.candidate.upstream
    credential = attempt.credential
    refusals = health.record_refusal(credential, request_id)
    logger.warning(
        "upstream %s refused credential #%s with %s for %s (%d recent refusals): %s",
        upstream.name,
        credential.id,
        response.status,
        request_id,
        refusals,
        body[:200].decode("utf-8", "replace"),
    )
    if not may_disable or refusals < settings.GATEWAY_CREDENTIAL_REFUSALS_TO_DISABLE:
        return False
    window = settings.GATEWAY_CREDENTIAL_REFUSAL_WINDOW_SECONDS
    reason = f"refused with {response.status} on {refusals} requests within {window:g} s"
    logger.error("upstream %s credential #%s disabled: %s", upstream.name, credential.id, reason)
    # No longer offered once the route table reloads (at once: the disable publishes); until then it
    # rests. Re-enabled in the admin, it starts with a clean count.
    health.forget_refusals(credential)
    await asyncio.shield(upstream_credential_disable(credential_id=credential.id, reason=reason))
    return True


def relayed_headers(response: UpstreamResponse) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers that the client may see."""
    headers = []
    for name, value in response.raw_headers:
        lower = name.lower()
        if lower in RESPONSE_HEADERS_NOT_FORWARDED or lower.startswith(RESPONSE_HEADER_PREFIXES_NOT_FORWARDED):
            continue
        headers.append((lower, value))
    return headers


class SseUsageReader:
    """Reads a relayed SSE stream on the side: usage, completion, and the model name to show.

    `feed` returns the bytes to send on, which are the bytes it got, except that the first event
    (`message_start`) is held until complete when its model name must be rewritten.
    """

    WATCHED = (b"event: message_start", b"event: message_delta", b"event: message_stop", b"event: error")

    def __init__(self, record: UsageRecord, *, shown_model: str | None, started: float) -> None:
        self.record = record
        self.shown_model = shown_model  # None: the upstream already uses the requested name
        self.started = started
        self.finished = False  # message_stop or an error event went by
        self._tail = b""
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        events = (self._tail + chunk).split(b"\n\n")
        self._tail = events.pop()
        for event in events:
            self._read_event(event)
        if self.shown_model is None:
            return chunk
        return self._rewrite_first_event(chunk)

    def _read_event(self, event: bytes) -> None:
        if self.record.time_to_first_token_ms is None and event.startswith(b"event: content_block_delta"):
            self.record.time_to_first_token_ms = (time.perf_counter() - self.started) * 1000
            return
        if not event.startswith(self.WATCHED):
            return
        data = _event_data(event)
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "message_start":
            message = data.get("message")
            if isinstance(message, dict):
                self.record.take_usage(message.get("usage"))
        elif kind == "message_delta":
            self.record.take_usage(data.get("usage"))
        elif kind == "message_stop":
            self.finished = True
        elif kind == "error":
            self.finished = True
            error = data.get("error")
            self.record.error_type = error.get("type", "error") if isinstance(error, dict) else "error"

    def _rewrite_first_event(self, chunk: bytes) -> bytes:
        self._held += chunk
        end = self._held.find(b"\n\n")
        if end < 0:
            return b""
        first, rest = self._held[: end + 2], self._held[end + 2 :]
        self._held = b""
        shown_model, self.shown_model = self.shown_model, None
        return _with_model(first, shown_model) + rest

    def unsent(self) -> bytes:
        """Bytes still held back when the stream ends early."""
        held, self._held = self._held, b""
        return held


def _event_data(event: bytes) -> object:
    start = event.find(b"data: ")
    if start < 0:
        return None
    try:
        return orjson.loads(event[start + 6 :])
    except orjson.JSONDecodeError:
        return None


def _with_model(event: bytes, model: str) -> bytes:
    data = _event_data(event)
    if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
        return event
    data["message"]["model"] = model
    return b"event: message_start\ndata: " + orjson.dumps(data) + b"\n\n"
