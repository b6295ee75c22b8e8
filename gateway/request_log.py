"""One line per /v1 request, written to standard error once the request is over.

What the operator needs to follow a request: its id, method, path and status, the key's display
prefix (never the key), the model asked for, the backend that answered and the model it was sent
as, the tokens the answer reported, the time to the first token and the whole duration. Never a
credential, a header's value or a body. LOG_FORMAT=json makes each line a JSON object (as every
other log line then is, llmapi/logging_format.py); otherwise `key=value` words.

Lines are gathered and written together at most every FLUSH_SECONDS by one background thread, so
that a request never pays for a write and a slow reader of standard error never stalls the event
loop. If the reader stops altogether, at most MAX_WAITING_LINES wait; past that, lines are
dropped and counted, and the count is written as soon as writing works again.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import orjson
from django.conf import settings

from gateway.usage.record import UsageRecord
from keys.selectors import KeyPrincipal
from llmapi.logging_format import utc_time

FLUSH_SECONDS = 0.05
MAX_WAITING_LINES = 10_000  # about 3 MB


@dataclass(slots=True)
class RequestOutcome:
    """What one request left for its line; the gateway fills it in as the request goes."""

    request_id: str
    method: str
    path: str
    started: float  # time.perf_counter() (uvloop's own clock counts whole milliseconds)
    status: int = 0
    principal: KeyPrincipal | None = None
    record: UsageRecord | None = None  # a message's usage record, once it has one


def line_fields(outcome: RequestOutcome, ended: float) -> dict[str, object]:
    fields: dict[str, object] = {
        "time": utc_time(time.time()),
        "request_id": outcome.request_id,
        "method": outcome.method,
        "path": outcome.path,
        "status": outcome.status,
        "duration_ms": round((ended - outcome.started) * 1000, 1),
    }
    if outcome.principal is not None:
        fields["key"] = outcome.principal.key_prefix
        fields["key_id"] = outcome.principal.key_id
    record = outcome.record
    if record is not None:
        fields |= {
            "model": record.requested_model,
            "backend": record.upstream or None,
            "backend_model": record.upstream_model or None,
            "stream": record.stream,
            "input_tokens": record.input_tokens,
            "output_tokens": record.output_tokens,
            "cache_creation_input_tokens": record.cache_creation_input_tokens,
            "cache_read_input_tokens": record.cache_read_input_tokens,
            "ttft_ms": None if record.time_to_first_token_ms is None else round(record.time_to_first_token_ms, 1),
            "error_type": record.error_type or None,
            "client_disconnected": record.client_disconnected,
        }
    return fields


def format_line(fields: dict[str, object], as_json: bool) -> bytes:
    if as_json:
        return orjson.dumps({"logger": "llmapi.requests", **fields}) + b"\n"
    words = " ".join(f"{name}={value}" for name, value in fields.items() if value is not None and name != "time")
    return f"{fields['time']} INFO llmapi.requests {words}\n".encode()


class RequestLog:
    """The process's request lines, on their way to standard error."""

    def __init__(self, write=None) -> None:
        self._write = write or _write_to_stderr
        self._waiting: list[bytes] = []
        self._dropped = 0
        self._flush_due = False
        self._writing = False
        self._thread: ThreadPoolExecutor | None = None

    def add(self, outcome: RequestOutcome) -> None:
        if not settings.REQUEST_LOG:
            return
        if len(self._waiting) >= MAX_WAITING_LINES:
            self._dropped += 1
            return
        self._waiting.append(format_line(line_fields(outcome, time.perf_counter()), settings.LOG_FORMAT == "json"))
        self._flush_soon()

    def _flush_soon(self) -> None:
        # Only ever on this timer: a write per FLUSH_SECONDS at most, however many requests end.
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        if self._writing or not self._waiting:
            return  # the write in progress schedules the next flush when it ends
        lines = self._take_waiting()
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="request-log")
        self._writing = True
        future = asyncio.get_running_loop().run_in_executor(self._thread, self._write, b"".join(lines))
        future.add_done_callback(self._written)

    def close(self) -> None:
        """At shutdown: finish the write in progress, then write what still waits, at once."""
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
        lines = self._take_waiting()
        if lines:
            with contextlib.suppress(Exception):
                self._write(b"".join(lines))

    def _take_waiting(self) -> list[bytes]:
        lines, self._waiting = self._waiting, []
        if self._dropped:
            dropped = {"time": utc_time(time.time()), "dropped_request_lines": self._dropped}
            lines.append(format_line(dropped, settings.LOG_FORMAT == "json"))
            self._dropped = 0
        return lines

    def _written(self, future: asyncio.Future[None]) -> None:
        self._writing = False
        if not future.cancelled():
            future.exception()  # a failed write loses those lines, and is not worth a crash
        if self._waiting or self._dropped:
            self._flush_soon()


def _write_to_stderr(data: bytes) -> None:
    sys.stderr.buffer.write(data)
    sys.stderr.buffer.flush()


request_log = RequestLog()
