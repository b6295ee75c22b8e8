"""UsageRecord: what one /v1/messages request leaves behind, as the gateway saw it."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
INTERRUPTED = "interrupted"  # the error_type of a request whose gateway process ended before it did


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
    ended_at: float = 0.0  # seconds since the epoch

    def take_usage(self, usage: object) -> None:
        """Copy the token counts an upstream reported (`usage` of a message or an event)."""
        if not isinstance(usage, dict):
            return
        for name in USAGE_FIELDS:
            value = usage.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(self, name, value)

    @property
    def is_refusal(self) -> bool:
        """An answer of our own (a GatewayError sets error_type) given before any backend answered."""
        return bool(self.error_type) and not self.upstream

    def to_json(self) -> bytes:
        return orjson.dumps(self)  # orjson reads dataclasses natively, ten times faster than asdict()

    @classmethod
    def from_json(cls, raw: bytes) -> UsageRecord:
        return cls(**orjson.loads(raw))


@dataclass(slots=True)
class RefusalCount:
    """How many times, in one hour, a key got one answer of our own for one model (a 404, a 429...).

    Refusals are counted, not recorded one by one: a flood of them must cost neither a stream
    entry nor an event row each. `key_id` is None for a refused key (401).
    """

    hour: int  # the hour's start, seconds since the epoch
    key_id: int | None
    user_id: int | None
    model: str
    status: int
    count: int

    def identity(self) -> tuple[int, int | None, int | None, str, int]:
        return (self.hour, self.key_id, self.user_id, self.model, self.status)

    def as_row(self) -> list[object]:
        """The form a stream entry carries (read back by gateway/usage/clean.py)."""
        return [*self.identity(), self.count]


@dataclass(frozen=True, slots=True)
class AdmissionStart:
    """An admitted request, written ahead to the usage stream by the limiter's script, in the round
    trip that admitted it. The request's record completes it (or, for a request that turned out
    not to count, a "given back" entry cancels it). One never completed belonged to a gateway
    process that died: after USAGE_INTERRUPTED_AFTER_SECONDS it is stored as interrupted."""

    request_id: str
    key_id: int
    user_id: int
    started_ms: int

    def to_json(self) -> bytes:
        return orjson.dumps([self.request_id, self.key_id, self.user_id, self.started_ms])

    def interrupted_record(self) -> UsageRecord:
        """What is known of a request whose end never came: who, when; no model, no tokens."""
        return UsageRecord(
            request_id=self.request_id,
            key_id=self.key_id,
            user_id=self.user_id,
            requested_model="",
            stream=False,
            error_type=INTERRUPTED,
            ended_at=self.started_ms / 1000,
        )


@dataclass(frozen=True, slots=True)
class GivenBack:
    """An admission given back (an answer of our own, an upload cut short): no record follows."""

    request_id: str
