"""One line per /v1 request, written to standard error once the request is over.

What the operator needs to follow a request: its id, method, path and status, the key's display
prefix (never the key), the model asked for, the backend that answered and the model it was sent
as, the tokens the answer reported, the time to the first token and the whole duration. Never a
credential, a header's value or a body. LOG_FORMAT=json makes each line a JSON object (as every
other log line then is, llmapi/logging_format.py); otherwise `key=value` words.

Finished requests are gathered and handed over at most every FLUSH_SECONDS to one background
thread, which formats and writes their lines and counts them in the metrics (gateway/metrics.py):
a request never pays for either, and a slow reader of standard error never stalls the event loop.
If the reader stops altogether, at most MAX_WAITING_LINES wait; past that, requests are dropped
from the log and counted, and the count is written as soon as writing works again.
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

from gateway.metrics import count_finished_requests, metrics_enabled
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
    ended: float = 0.0  # the same clock
    ended_at: float = 0.0  # time.time()
    status: int = 0
    limiter_mode: str = ""  # admit, guard or peek, once the limiter was asked
    limiter_outcome: str = ""  # admitted, refused or unchecked
    principal: KeyPrincipal | None = None
    record: UsageRecord | None = None  # a message's usage record, once it has one


def line_fields(outcome: RequestOutcome) -> dict[str, object]:
    fields: dict[str, object] = {
        "time": utc_time(outcome.ended_at),
        "request_id": outcome.request_id,
        "method": outcome.method,
        "path": outcome.path,
        "status": outcome.status,
        "duration_ms": round((outcome.ended - outcome.started) * 1000, 1),
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
    """The process's finished requests, on their way to standard error and the metrics."""

    def __init__(self, write=None) -> None:
        self._write = write or _write_to_stderr
        self._waiting: list[RequestOutcome] = []
        self._dropped = 0
        self._flush_due = False
        self._writing = False
        self._thread: ThreadPoolExecutor | None = None

    def add(self, outcome: RequestOutcome) -> None:
        if not (settings.REQUEST_LOG or metrics_enabled()):
            return
        if len(self._waiting) >= MAX_WAITING_LINES:
            self._dropped += 1
            return
        outcome.ended, outcome.ended_at = time.perf_counter(), time.time()
        self._waiting.append(outcome)
        self._flush_soon()

    def _flush_soon(self) -> None:
        # Only ever on this timer: a write per FLUSH_SECONDS at most, however many requests end.
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        if self._writing or not (self._waiting or self._dropped):
            return  # the write in progress schedules the next flush when it ends
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="request-log")
        self._writing = True
        future = asyncio.get_running_loop().run_in_executor(self._thread, self._hand_over, *self._take_waiting())
        future.add_done_callback(self._written)

    def close(self) -> None:
        """At shutdown: finish the write in progress, then hand over what still waits, at once."""
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
        with contextlib.suppress(Exception):
            self._hand_over(*self._take_waiting())

    def _take_waiting(self) -> tuple[list[RequestOutcome], int]:
        taken = self._waiting, self._dropped
        self._waiting, self._dropped = [], 0
        return taken

    def _hand_over(self, outcomes: list[RequestOutcome], dropped: int) -> None:
        """In the thread: count the requests, then write their lines."""
        if metrics_enabled():
            count_finished_requests(outcomes)
        if settings.REQUEST_LOG:
            as_json = settings.LOG_FORMAT == "json"
            lines = [format_line(line_fields(outcome), as_json) for outcome in outcomes]
            if dropped:
                lines.append(format_line({"time": utc_time(time.time()), "dropped_request_lines": dropped}, as_json))
            if lines:
                self._write(b"".join(lines))

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
