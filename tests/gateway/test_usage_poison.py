"""Nothing a record holds can stall the usage drain: it is cleaned or dead-lettered, the rest is stored."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.models import Sum
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from gateway.redis_keys import usage_stream_key
from gateway.usage.clean import RECORD_FIELD, REFUSALS_FIELD
from gateway.usage.drain import GROUP, drain_usage_stream, ensure_group
from gateway.usage.models import Granularity, RefusalRollup, UsageDeadLetter, UsageEvent, UsageRollup
from gateway.usage.record import UsageRecord
from gateway.usage.services import usage_ingest
from keys.services import api_key_create

pytestmark = pytest.mark.django_db

FIELD_NAMES = [
    "request_id",
    "key_id",
    "user_id",
    "requested_model",
    "stream",
    "upstream",
    "upstream_model",
    "status",
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "time_to_first_token_ms",
    "duration_ms",
    "client_disconnected",
    "error_type",
    "ended_at",
]

NASTY_TEXT = st.one_of(
    st.text(),  # anything: NUL and other control characters, lone surrogates, any script
    st.builds(lambda char, times: char * times, st.characters(), st.sampled_from([2, 300, 1_000_000])),
    st.sampled_from(["x\x00", "\ud800", "a\udfffb", "\x00" * 70]),
)
NASTY_NUMBER = st.one_of(
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**70),
    st.integers(max_value=-1),
    st.floats(),  # NaN and infinities too: JSON cannot carry them, so the payload is not JSON
    st.booleans(),
    st.none(),
)
NASTY_VALUE = st.one_of(
    NASTY_TEXT,
    NASTY_NUMBER,
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@pytest.fixture
def keys(alice, bob):
    return [api_key_create(user=alice, name="laptop").api_key, api_key_create(user=bob, name="ci").api_key]


def normal_record(request_id: str, key, index: int) -> dict[str, object]:
    return {
        "request_id": request_id,
        "key_id": key.pk,
        "user_id": key.user_id,
        "requested_model": "claude-sonnet-4-6",
        "stream": index % 2 == 0,
        "upstream": "sim",
        "upstream_model": "claude-sonnet-4-6",
        "status": 200,
        "input_tokens": 10 + index,
        "output_tokens": 5,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 3,
        "time_to_first_token_ms": 12.5,
        "duration_ms": 40.0,
        "client_disconnected": False,
        "error_type": "",
        "ended_at": datetime.now(UTC).timestamp(),
    }


odd_changes = st.tuples(
    st.dictionaries(st.sampled_from([*FIELD_NAMES, "extra", "\x00"]), NASTY_VALUE, max_size=4),
    st.sets(st.sampled_from(FIELD_NAMES), max_size=3),  # fields left out
)
entries_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("normal")),
        st.tuples(st.just("odd"), odd_changes),
        st.tuples(st.just("bytes"), st.binary(max_size=300)),  # not JSON, or JSON of the wrong shape
        # Entries of other shapes (field names of two bytes or more: never a record's or refusal counts').
        st.tuples(st.just("fields"), st.dictionaries(st.binary(min_size=2, max_size=5), st.binary(), min_size=1)),
    ),
    min_size=1,
    max_size=25,
)


def odd_payload(base: dict[str, object], changes: dict[str, object], left_out: set[str], index: int) -> bytes:
    values = {name: value for name, value in base.items() if name not in left_out}
    values.update(changes)
    if isinstance(values.get("request_id"), str):
        values["request_id"] = f"{values['request_id']}-{base['request_id']}"  # a nasty id, still one of its own
    # The standard library writes what orjson refuses to read: huge integers, NaN, lone surrogates.
    return json.dumps(values).encode()


@hypothesis_settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(entries=entries_strategy)
def test_every_entry_is_stored_cleaned_or_dead_lettered_and_normal_ones_exactly(entries, keys, stream_client):
    run = uuid.uuid4().hex[:8]
    ensure_group(stream_client, usage_stream_key(0))
    normal: dict[str, dict[str, object]] = {}
    for index, (kind, *detail) in enumerate(entries):
        base = normal_record(f"{run}-{index}", keys[index % 2], index)
        if kind == "normal":
            normal[base["request_id"]] = base
            fields = {RECORD_FIELD: json.dumps(base).encode()}
        elif kind == "odd":
            fields = {RECORD_FIELD: odd_payload(base, *detail[0], index)}
        elif kind == "bytes":
            fields = {RECORD_FIELD: detail[0]}
        else:
            fields = detail[0]
        stream_client.xadd(usage_stream_key(0), fields)
    dead_before = UsageDeadLetter.objects.count()
    events_before = UsageEvent.objects.count()

    drain_usage_stream(client=stream_client)

    assert stream_client.xlen(usage_stream_key(0)) == 0  # nothing left to be retried
    assert stream_client.xpending(usage_stream_key(0), GROUP)["pending"] == 0
    stored = UsageEvent.objects.count() - events_before
    dead = UsageDeadLetter.objects.count() - dead_before
    assert stored + dead == len(entries)  # each entry once: an event or a dead letter
    for request_id, values in normal.items():
        event = UsageEvent.objects.get(request_id=request_id)
        assert (event.input_tokens, event.cache_read_input_tokens, event.api_key_id) == (
            values["input_tokens"],
            3,
            values["key_id"],
        )
    totals = UsageRollup.objects.filter(granularity=Granularity.HOUR).aggregate(
        requests=Sum("requests"), input_tokens=Sum("input_tokens")
    )
    event_tokens = UsageEvent.objects.aggregate(tokens=Sum("input_tokens"))["tokens"] or 0
    assert (totals["requests"] or 0, totals["input_tokens"] or 0) == (UsageEvent.objects.count(), event_tokens)


def test_a_nul_in_a_model_name_is_cleaned_and_the_batch_stored(keys):
    """The report's case: a 404 for `x\\u0000` held up everyone's records behind it."""
    laptop, ci = keys
    now = datetime.now(UTC).timestamp()
    records = [UsageRecord("req_nul", laptop.pk, laptop.user_id, "x\x00", False, status=404, ended_at=now)]
    records += [UsageRecord(f"req_{n}", ci.pk, ci.user_id, "claude-sonnet-4-6", False, ended_at=now) for n in range(8)]
    assert usage_ingest(records=records) == 9
    assert UsageEvent.objects.get(request_id="req_nul").requested_model == "x"


def test_a_record_the_database_still_refuses_is_dead_lettered_and_the_rest_stored(keys):
    laptop, _ = keys
    with connection.cursor() as cursor:  # a refusal the cleaning cannot know about (undone with the test)
        cursor.execute("ALTER TABLE gateway_usageevent ADD CONSTRAINT no_teapots CHECK (status <> 418)")
    now = datetime.now(UTC).timestamp()
    records = [
        UsageRecord(f"req_{status}", laptop.pk, laptop.user_id, "claude-sonnet-4-6", False, status=status, ended_at=now)
        for status in (200, 418, 201)
    ]
    assert usage_ingest(records=records) == 2
    assert sorted(UsageEvent.objects.values_list("request_id", flat=True)) == ["req_200", "req_201"]
    letter = UsageDeadLetter.objects.get()
    assert "no_teapots" in letter.reason
    assert b'"req_418"' in bytes(letter.payload)


def test_records_of_deleted_keys_are_dead_lettered(keys):
    laptop, _ = keys
    now = datetime.now(UTC).timestamp()
    records = [
        UsageRecord("req_ok", laptop.pk, laptop.user_id, "m", False, ended_at=now),
        UsageRecord("req_gone", 999_999, 999_999, "m", False, ended_at=now),
    ]
    assert usage_ingest(records=records) == 1
    assert UsageDeadLetter.objects.get().reason == "no such API key"


def test_an_entry_claimed_too_often_is_dead_lettered(keys, stream_client, settings):
    laptop, _ = keys
    ensure_group(stream_client, usage_stream_key(0))
    payload = json.dumps(normal_record("req_unlucky", laptop, 0)).encode()
    stream_client.xadd(usage_stream_key(0), {RECORD_FIELD: payload})
    stream_client.xreadgroup(GROUP, "a-drain-that-died", {usage_stream_key(0): ">"})  # delivered once, never acked
    settings.USAGE_CLAIM_IDLE_SECONDS = 0
    settings.USAGE_MAX_DELIVERIES = 1
    assert drain_usage_stream(client=stream_client) == 0
    letter = UsageDeadLetter.objects.get()
    assert (letter.reason, bytes(letter.payload)) == ("delivered 2 times without being stored", payload)
    assert stream_client.xpending(usage_stream_key(0), GROUP)["pending"] == 0


def test_dead_letters_are_shown_in_the_admin(admin_client, keys):
    usage_ingest(records=[UsageRecord("req_gone", 999_999, 1, "m\x00", False, ended_at=1.0)])
    letter = UsageDeadLetter.objects.get()
    assert admin_client.get("/admin/gateway/usagedeadletter/").status_code == 200
    page = admin_client.get(f"/admin/gateway/usagedeadletter/{letter.pk}/change/")
    assert page.status_code == 200
    assert "no such API key" in page.content.decode()


def test_refusal_counts_are_cleaned_or_dead_lettered(keys, stream_client):
    laptop, _ = keys
    ensure_group(stream_client, usage_stream_key(0))
    hour = int(datetime.now(UTC).timestamp() // 3600) * 3600
    rows = [[hour, laptop.pk, laptop.user_id, "x\x00", 404, 3], [hour, None, None, "", 401, 2]]
    stream_client.xadd(usage_stream_key(0), {REFUSALS_FIELD: json.dumps(rows).encode()})
    stream_client.xadd(usage_stream_key(0), {REFUSALS_FIELD: b'[[1, 2, "three"]]'})
    drain_usage_stream(client=stream_client)
    counts = {(row.status, row.model, row.api_key_id): row.count for row in RefusalRollup.objects.all()}
    assert counts == {(404, "x", laptop.pk): 3, (401, "", None): 2}
    assert bytes(UsageDeadLetter.objects.get().payload) == b'[[1, 2, "three"]]'
