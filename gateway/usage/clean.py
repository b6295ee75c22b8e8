"""Making usage records storable: what the database would refuse is cleaned, or set aside.

A record comes from a client's request (the model name is whatever the client sent) and from a
stream anyone with Redis access can write to, so nothing in it is trusted. Text loses control
characters (PostgreSQL refuses NUL) and lone surrogates, and is cut to its column's length;
numbers are clamped into their column's range; a missing or mistyped optional field takes its
default, unknown fields are ignored. A record without a usable request id or key cannot be
stored or deduplicated at all: it becomes a dead letter, kept with its raw payload for the admin.
"""

from __future__ import annotations

import math
import time
import unicodedata
from dataclasses import dataclass, fields
from itertools import islice

import orjson

from gateway.usage.record import USAGE_FIELDS, AdmissionStart, GivenBack, RefusalCount, UsageRecord

REQUEST_ID_LENGTH = 64
TEXT_LENGTHS = {"requested_model": 200, "upstream": 100, "upstream_model": 200, "error_type": 50}
MAX_ID = 2**63 - 1  # bigint
MAX_STATUS = 999
MAX_TOKENS = 2**40  # a trillion tokens in one request is already absurd; sums stay far from bigint's end
MAX_MILLISECONDS = 1e10  # about four months
EARLIEST_END = 946_684_800.0  # 2000-01-01: anything before is a broken clock
LATEST_END_AHEAD = 24 * 3600.0  # a clock a day ahead of ours is broken too
DROPPED_CATEGORIES = frozenset({"Cc", "Cs"})  # control characters, lone surrogates
RECORD_FIELD = b"r"  # a stream entry holding one record as JSON
REFUSALS_FIELD = b"c"  # a stream entry holding refusal counts, as JSON rows
STARTED_FIELD = b"s"  # an admission written ahead by the limiter: [request id, key, user, ms]
GIVEN_BACK_FIELD = b"x"  # an admission given back: its request id
RECORD_FIELDS = frozenset(field.name for field in fields(UsageRecord))
WHOLE_NUMBER_RANGES = (
    ("key_id", MAX_ID),
    ("user_id", MAX_ID),
    ("status", MAX_STATUS),
    *((name, MAX_TOKENS) for name in USAGE_FIELDS),
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that cannot be stored: its raw payload and why."""

    payload: bytes
    reason: str


class UnstorableRecordError(ValueError):
    """The record lacks what storing it needs (a request id, a key)."""


Entry = UsageRecord | list[RefusalCount] | AdmissionStart | GivenBack | DeadLetter


def read_entry(fields: dict[bytes, bytes]) -> Entry:
    """What a stream entry carries, cleaned: a record, refusal counts, an admission or its
    give-back, or a dead letter."""
    if len(fields) == 1:
        (name, payload), *_ = fields.items()
        reader = ENTRY_READERS.get(name)
        if reader is not None:
            return reader(payload)
    return DeadLetter(entry_payload(fields), "a stream entry of unknown shape")


def start_from_payload(payload: bytes) -> AdmissionStart | DeadLetter:
    try:
        request_id, key_id, user_id, started_ms = orjson.loads(payload)
        return AdmissionStart(
            _request_id(request_id), _identifier(key_id, "key_id"), _identifier(user_id, "user_id"), _start(started_ms)
        )
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:  # UnstorableRecordError is a ValueError
        return DeadLetter(payload, f"unreadable admission: {exc}")


def given_back_from_payload(payload: bytes) -> GivenBack | DeadLetter:
    try:
        return GivenBack(_request_id(payload.decode()))
    except (UnicodeDecodeError, UnstorableRecordError) as exc:
        return DeadLetter(payload, f"unreadable give-back: {exc}")


def _start(value: object) -> int:
    if type(value) is not int or not EARLIEST_END * 1000 <= value <= (time.time() + LATEST_END_AHEAD) * 1000:
        raise UnstorableRecordError("no usable start time")
    return value


def entry_payload(fields: dict[bytes, bytes]) -> bytes:
    """An entry's raw form for a dead letter: its one field's value, or every field."""
    if len(fields) == 1:
        return next(iter(fields.values()))
    return b"\n".join(name + b"=" + value for name, value in fields.items())


def refusals_from_payload(payload: bytes) -> list[RefusalCount] | DeadLetter:
    try:
        rows = orjson.loads(payload)
        return [_refusal(row) for row in rows]
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        return DeadLetter(payload, f"unreadable refusal counts: {exc}")


def _refusal(row: object) -> RefusalCount:
    if not isinstance(row, list) or len(row) != 6:
        raise ValueError("a row is not [hour, key, user, model, status, count]")
    hour, key_id, user_id, model, status, count = row
    if not isinstance(hour, int) or not EARLIEST_END <= hour <= time.time() + LATEST_END_AHEAD:
        raise ValueError("no usable hour")
    return RefusalCount(
        hour=hour - hour % 3600,
        key_id=_optional_identifier(key_id),
        user_id=_optional_identifier(user_id),
        model=_text(model, TEXT_LENGTHS["requested_model"]),
        status=_clamped_int(status, MAX_STATUS),
        count=_clamped_int(count, MAX_TOKENS),
    )


def _optional_identifier(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID else None


def record_from_payload(payload: bytes) -> UsageRecord | DeadLetter:
    """The record a stream entry holds, cleaned; or a dead letter."""
    try:
        values = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return DeadLetter(payload, f"not JSON: {exc}")
    if not isinstance(values, dict):
        return DeadLetter(payload, "not a JSON object")
    try:
        return cleaned_record(values)
    except UnstorableRecordError as exc:
        return DeadLetter(payload, str(exc))


def clean_records(records: list[UsageRecord]) -> tuple[list[UsageRecord], list[DeadLetter]]:
    """Records from the gateway itself, cleaned the same way (a client's model name may hold a NUL)."""
    storable, dead = [], []
    for record in records:
        try:
            storable.append(cleaned_record({name: getattr(record, name) for name in RECORD_FIELDS}))
        except UnstorableRecordError as exc:
            dead.append(DeadLetter(payload_of(record), str(exc)))
    return storable, dead


def payload_of(record: UsageRecord) -> bytes:
    """A record's raw form for a dead letter, whatever it holds."""
    try:
        return record.to_json()
    except TypeError:  # a lone surrogate, say: keep a readable form instead
        return repr(record).encode("utf-8", "backslashreplace")


def cleaned_record(values: dict[str, object]) -> UsageRecord:
    if _already_clean(values):
        return UsageRecord(**values)  # the usual record, as the gateway wrote it
    return UsageRecord(
        request_id=_request_id(values.get("request_id")),
        key_id=_identifier(values.get("key_id"), "key_id"),
        user_id=_identifier(values.get("user_id"), "user_id"),
        requested_model=_text(values.get("requested_model"), TEXT_LENGTHS["requested_model"]),
        stream=values.get("stream") is True,
        upstream=_text(values.get("upstream"), TEXT_LENGTHS["upstream"]),
        upstream_model=_text(values.get("upstream_model"), TEXT_LENGTHS["upstream_model"]),
        status=_clamped_int(values.get("status"), MAX_STATUS),
        **{name: _clamped_int(values.get(name), MAX_TOKENS) for name in USAGE_FIELDS},
        time_to_first_token_ms=_milliseconds(values.get("time_to_first_token_ms"), default=None),
        duration_ms=_milliseconds(values.get("duration_ms"), default=0.0),
        client_disconnected=values.get("client_disconnected") is True,
        error_type=_text(values.get("error_type"), TEXT_LENGTHS["error_type"]),
        ended_at=_end_time(values.get("ended_at")),
    )


def _already_clean(values: dict[str, object]) -> bool:
    """True for a record every field of which is already storable: checked in one pass, for speed."""
    if values.keys() != RECORD_FIELDS:
        return False
    request_id, ended_at = values["request_id"], values["ended_at"]
    if not (type(request_id) is str and 0 < len(request_id) <= REQUEST_ID_LENGTH and request_id.isprintable()):
        return False
    if type(ended_at) is not float or not EARLIEST_END <= ended_at <= time.time() + LATEST_END_AHEAD:
        return False
    for name, highest in WHOLE_NUMBER_RANGES:
        value = values[name]
        if type(value) is not int or not 0 <= value <= highest:
            return False
    for name, length in TEXT_LENGTHS.items():
        value = values[name]
        if type(value) is not str or len(value) > length or not value.isprintable():
            return False
    duration, first_token = values["duration_ms"], values["time_to_first_token_ms"]
    return (
        type(duration) is float
        and 0.0 <= duration <= MAX_MILLISECONDS
        and (first_token is None or (type(first_token) is float and 0.0 <= first_token <= MAX_MILLISECONDS))
        and type(values["stream"]) is bool
        and type(values["client_disconnected"]) is bool
        and values["key_id"] > 0
        and values["user_id"] > 0
    )


def _request_id(value: object) -> str:
    # Not cleaned: two different ids cleaned into one would make one request hide another.
    if isinstance(value, str) and 0 < len(value) <= REQUEST_ID_LENGTH and value.isprintable():
        return value
    raise UnstorableRecordError("no usable request_id")


def _identifier(value: object, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return value
    raise UnstorableRecordError(f"no usable {name}")


def _text(value: object, length: int) -> str:
    if not isinstance(value, str):
        return ""
    if len(value) <= length and value.isprintable():
        return value  # the usual case, decided without looking at each character
    kept = (char for char in value if unicodedata.category(char) not in DROPPED_CATEGORIES)
    return "".join(islice(kept, length))


def _clamped_int(value: object, highest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float):
        if not math.isfinite(value):
            return 0
        value = int(value)
    return min(max(value, 0), highest)


def _milliseconds(value: object, *, default: float | None) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return default
    return min(max(float(value), 0.0), MAX_MILLISECONDS)


def _end_time(value: object) -> float:
    now = time.time()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return now
    if not EARLIEST_END <= value <= now + LATEST_END_AHEAD:
        return now
    return float(value)


ENTRY_READERS = {
    RECORD_FIELD: record_from_payload,
    REFUSALS_FIELD: refusals_from_payload,
    STARTED_FIELD: start_from_payload,
    GIVEN_BACK_FIELD: given_back_from_payload,
}
