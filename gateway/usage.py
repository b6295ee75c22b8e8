"""Usage records: one per /v1/messages request, handed to a sink after the response ends.

The sink here keeps records in process (a bounded buffer that tests and the admin can read);
the usage pipeline puts a Redis stream and Celery behind the same `emit` call. Emitting never
blocks and never fails the request.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

logger = logging.getLogger(__name__)

USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


@dataclass(slots=True)
class UsageRecord:
    request_id: str
    key_id: int
    user_id: int
    requested_model: str
    stream: bool
    upstream: str = ""
    upstream_model: str = ""
    status: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    time_to_first_token_ms: float | None = None
    duration_ms: float = 0.0
    client_disconnected: bool = False
    error_type: str = ""

    def take_usage(self, usage: object) -> None:
        """Copy the token counts an upstream reported (`usage` of a message or an event)."""
        if not isinstance(usage, dict):
            return
        for name in USAGE_FIELDS:
            value = usage.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(self, name, value)


class InProcessUsageSink:
    """Keeps the latest records in memory; the usage pipeline replaces it."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.records: deque[UsageRecord] = deque(maxlen=capacity)

    def emit(self, record: UsageRecord) -> None:
        self.records.append(record)

    def find(self, request_id: str) -> UsageRecord | None:
        return next((record for record in reversed(self.records) if record.request_id == request_id), None)


usage_sink = InProcessUsageSink()


def emit(record: UsageRecord) -> None:
    try:
        usage_sink.emit(record)
    except Exception:
        logger.exception("usage record %s could not be emitted", record.request_id)
