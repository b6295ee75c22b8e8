"""Usage into the database: events, rollups and each key's last use, exactly once; and retention.

`usage_ingest` is the one way records reach the tables (the stream drain and the gateway's own
database fallback both call it). Nothing in a batch can stall it: records are cleaned first
(gateway/usage/clean.py); records of keys that no longer exist, and any the database still
refuses, become dead letters; the rest of the batch is stored. Admissions written ahead by the
limiter wait in UsageStart until their record comes; `usage_store_interrupted` stores those whose
record never does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Q

from gateway.usage.clean import DeadLetter, Entry, clean_records, payload_of, read_entry
from gateway.usage.models import UsageDeadLetter, UsageEvent, UsageStart
from gateway.usage.record import (
    INTERRUPTED,
    USAGE_FIELDS,
    AdmissionStart,
    GivenBack,
    RefusalCount,
    UsageRecord,
)
from gateway.usage.rollups import add_refusals, add_to_rollups, remove_from_rollups
from keys.models import ApiKey

logger = logging.getLogger(__name__)

# The database being away is no fault of a record: the batch waits and is tried again.
UNAVAILABLE = (OperationalError, InterfaceError)
# How long an admission stored as interrupted is remembered: a record that comes within this
# replaces the interrupted event; a later one is ignored (its request is already stored).
LATE_RECORDS_AWAITED = timedelta(days=1)


def usage_ingest(
    *,
    records: Iterable[UsageRecord] = (),
    entries: Iterable[dict[bytes, bytes]] = (),
    refusals: Iterable[RefusalCount] = (),
    dead_letters: Iterable[DeadLetter] = (),
) -> int:
    """Store usage records and add them to the rollups, each exactly once; returns how many were new.

    `records` and `refusals` come from a gateway process, `entries` are stream entries as they
    were read (records, refusal counts, admissions written ahead and their give-backs), and
    `dead_letters` were given up on before (kept in the same transaction). Safe to run twice on
    the same records (a redelivered stream entry): the unique request id lets only the first
    insert through, and only inserted events are added to the rollups, in the same transaction.
    """
    batch = IngestBatch()
    batch.add_records(records)
    batch.refusals += refusals
    batch.dead += dead_letters
    for fields in entries:
        batch.add_entry(read_entry(fields))
    storable = _owned(batch.records, batch.dead)
    try:
        with transaction.atomic():
            late = _follow_admissions(batch.starts, batch.ended_request_ids())
            stored = _store(storable, late)
            add_refusals(batch.refusals)
            _keep_dead_letters(batch.dead)
    except UNAVAILABLE:
        raise
    except DatabaseError as exc:  # something the cleaning did not foresee: find the record, keep the rest
        logger.error("usage: a batch of %d was refused (%r); storing it record by record", len(storable), exc)
        stored = _store_one_by_one(storable, batch)
    return stored


@dataclass
class IngestBatch:
    """What one call of usage_ingest stores, sorted by kind."""

    records: list[UsageRecord] = field(default_factory=list)
    refusals: list[RefusalCount] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    starts: list[AdmissionStart] = field(default_factory=list)
    given_back: list[str] = field(default_factory=list)

    def add_records(self, records: Iterable[UsageRecord]) -> None:
        storable, dead = clean_records(list(records))
        self.records += storable
        self.dead += dead

    def add_entry(self, content: Entry) -> None:
        if isinstance(content, UsageRecord):
            self.records.append(content)
        elif isinstance(content, AdmissionStart):
            self.starts.append(content)
        elif isinstance(content, GivenBack):
            self.given_back.append(content.request_id)
        elif isinstance(content, DeadLetter):
            self.dead.append(content)
        else:
            self.refusals += content

    def ended_request_ids(self) -> set[str]:
        """Requests this batch says are over: their admissions need no waiting for."""
        ended = {record.request_id for record in self.records if record.error_type != INTERRUPTED}
        return ended | set(self.given_back)


def _follow_admissions(starts: list[AdmissionStart], ended: set[str]) -> set[str]:
    """Forget the admissions of ended requests; keep the others until their record comes (or
    usage_store_interrupted decides it never will). An admission and its record usually share a
    batch, and then neither touches the table. Returns the ended requests that had been stored
    as interrupted meanwhile."""
    late = _forget_admissions(ended)
    waiting = [start for start in starts if start.request_id not in ended]
    if waiting:
        UsageStart.objects.bulk_create(
            (
                UsageStart(
                    request_id=start.request_id,
                    api_key_id=start.key_id,
                    user_id=start.user_id,
                    started_at=datetime.fromtimestamp(start.started_ms / 1000, tz=UTC),
                )
                for start in waiting
            ),
            ignore_conflicts=True,  # the same admission delivered twice
        )
    return late


def _forget_admissions(ended: set[str]) -> set[str]:
    """Delete the admissions of `ended`; returns those that had been stored as interrupted."""
    if not ended:
        return set()
    if connection.vendor == "postgresql":
        with server_binding_cursor() as cursor:  # one statement, the ids as one array
            cursor.execute(
                f"DELETE FROM {UsageStart._meta.db_table} WHERE request_id = ANY(%s::varchar[]) "  # noqa: S608 - ours
                "RETURNING request_id, interrupted_at IS NOT NULL",
                [list(ended)],
            )
            return {request_id for request_id, interrupted in cursor.fetchall() if interrupted}
    admissions = UsageStart.objects.filter(request_id__in=ended)
    late = set(admissions.filter(interrupted_at__isnull=False).values_list("request_id", flat=True))
    admissions.delete()
    return late


def usage_store_interrupted(*, now: datetime | None = None, batch_size: int = 1_000) -> int:
    """Store as interrupted every admission still waiting USAGE_INTERRUPTED_AFTER_SECONDS after it
    started: the gateway process serving it died, so no record will come. Returns how many."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=settings.USAGE_INTERRUPTED_AFTER_SECONDS)
    stored = 0
    while True:
        with transaction.atomic():
            # Skip rows another sweep holds: each admission is stored by one of them.
            overdue = list(
                UsageStart.objects.select_for_update(skip_locked=True)
                .filter(started_at__lt=cutoff, interrupted_at__isnull=True)
                .order_by("started_at")[:batch_size]
            )
            if not overdue:
                break
            stored += usage_ingest(
                records=[_interrupted(row.request_id, row.api_key_id, row.user_id, row.started_at) for row in overdue]
            )
            # Kept a while, marked: a record that still comes then replaces the interrupted event.
            UsageStart.objects.filter(pk__in=[row.pk for row in overdue]).update(interrupted_at=now)
    UsageStart.objects.filter(interrupted_at__lt=now - LATE_RECORDS_AWAITED).delete()
    return stored


def _interrupted(request_id: str, key_id: int, user_id: int, started_at: datetime) -> UsageRecord:
    """The record of an interrupted request, from what a UsageStart or an interrupted event holds."""
    return AdmissionStart(request_id, key_id, user_id, int(started_at.timestamp() * 1000)).interrupted_record()


def _owned(records: list[UsageRecord], dead: list[DeadLetter]) -> list[UsageRecord]:
    """The records whose key still exists, each with the key's owner as its user."""
    owners = _key_owners(records)
    known = []
    for record in records:
        owner = owners.get(record.key_id)
        if owner is None:  # the key (or its account) was deleted since: nothing to count it against
            dead.append(DeadLetter(payload_of(record), "no such API key"))
            continue
        record.user_id = owner  # whatever the record claims, the event belongs to the key's owner
        known.append(record)
    return known


def _store(records: list[UsageRecord], late: set[str]) -> int:
    if late:
        _take_back_interrupted(late)
    new = _insert_new_events(records)
    add_to_rollups(new)
    _stamp_last_use(new)
    return len(new)


def _take_back_interrupted(late: set[str]) -> None:
    """The records of `late` came after their requests were stored as interrupted (they ran
    longer than USAGE_INTERRUPTED_AFTER_SECONDS): the interrupted events make way, in the rollups too."""
    replaced = UsageEvent.objects.filter(request_id__in=late, error_type=INTERRUPTED)
    taken_back = [
        _interrupted(*row) for row in replaced.values_list("request_id", "api_key_id", "user_id", "created_at")
    ]
    replaced.delete()
    remove_from_rollups(taken_back)


def _store_one_by_one(records: list[UsageRecord], batch: IngestBatch) -> int:
    with transaction.atomic():
        late = _follow_admissions(batch.starts, batch.ended_request_ids())
    stored = 0
    for record in records:
        try:
            with transaction.atomic():
                stored += _store([record], late & {record.request_id})
        except UNAVAILABLE:
            raise
        except DatabaseError as exc:
            batch.dead.append(DeadLetter(payload_of(record), f"refused by the database: {exc}"))
    with transaction.atomic():
        add_refusals(batch.refusals)
        _keep_dead_letters(batch.dead)
    return stored


def _keep_dead_letters(dead: list[DeadLetter]) -> None:
    if not dead:
        return
    logger.error("usage: %d records set aside as dead letters (see the admin)", len(dead))
    UsageDeadLetter.objects.bulk_create(
        UsageDeadLetter(reason=_readable(letter.reason)[:200], payload=letter.payload) for letter in dead
    )


def _readable(reason: str) -> str:
    # A reason may quote the record (a database error does): escape what a text column refuses.
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in reason[:200])


def _key_owners(records: list[UsageRecord]) -> dict[int, int]:
    key_ids = {record.key_id for record in records}
    return dict(ApiKey.objects.filter(pk__in=key_ids).values_list("pk", "user_id")) if key_ids else {}


EVENT_COLUMNS = (
    ("request_id", "varchar"),
    ("created_at", "timestamptz"),
    ("api_key_id", "bigint"),
    ("user_id", "bigint"),
    ("requested_model", "varchar"),
    ("upstream", "varchar"),
    ("upstream_model", "varchar"),
    ("status", "smallint"),
    ("stream", "boolean"),
    *((name, "bigint") for name in USAGE_FIELDS),
    ("time_to_first_token_ms", "double precision"),
    ("duration_ms", "double precision"),
    ("client_disconnected", "boolean"),
    ("error_type", "varchar"),
)


def _insert_new_events(records: list[UsageRecord]) -> list[UsageRecord]:
    """Insert the events not stored yet; returns the records that were new."""
    by_id = {record.request_id: record for record in records}
    if not by_id:
        return []
    if connection.vendor == "postgresql":
        inserted = _insert_with_unnest(list(by_id.values()))
    else:
        inserted = _insert_with_orm(by_id)
    return [by_id[request_id] for request_id in inserted]


def _insert_with_unnest(records: list[UsageRecord]) -> list[str]:
    # One statement whatever the batch size, with one array per column; ON CONFLICT leaves a
    # request id already stored (or being stored by a concurrent drain) alone.
    table = UsageEvent._meta.db_table
    names = ", ".join(name for name, _ in EVENT_COLUMNS)
    arrays = ", ".join(f"%s::{kind}[]" for _, kind in EVENT_COLUMNS)
    sql = (
        f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) "  # noqa: S608 - names are ours
        "ON CONFLICT (request_id) DO NOTHING RETURNING request_id"
    )
    columns = [
        [record.request_id for record in records],
        [datetime.fromtimestamp(record.ended_at, tz=UTC) for record in records],
        [record.key_id for record in records],
        [record.user_id for record in records],
        [record.requested_model for record in records],
        [record.upstream for record in records],
        [record.upstream_model for record in records],
        [record.status for record in records],
        [record.stream for record in records],
        *([getattr(record, name) for record in records] for name in USAGE_FIELDS),
        [record.time_to_first_token_ms for record in records],
        [record.duration_ms for record in records],
        [record.client_disconnected for record in records],
        [record.error_type for record in records],
    ]
    with server_binding_cursor() as cursor:
        cursor.execute(sql, columns)
        return [row[0] for row in cursor.fetchall()]


@contextmanager
def server_binding_cursor() -> Iterator[psycopg.Cursor]:
    """A cursor binding on the server: arrays travel in psycopg's compiled format instead of being
    quoted into the SQL text element by element (Django's client-side cursor would). Errors come
    out as Django's, as from any other query."""
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield cursor


def _insert_with_orm(by_id: dict[str, UsageRecord]) -> list[str]:
    # The embedded database (SQLite, one process): nobody inserts concurrently.
    stored = set(UsageEvent.objects.filter(request_id__in=by_id).values_list("request_id", flat=True))
    new = [request_id for request_id in by_id if request_id not in stored]
    UsageEvent.objects.bulk_create(_event(by_id[request_id]) for request_id in new)
    return new


def _event(record: UsageRecord) -> UsageEvent:
    return UsageEvent(
        request_id=record.request_id,
        created_at=datetime.fromtimestamp(record.ended_at, tz=UTC),
        api_key_id=record.key_id,
        user_id=record.user_id,
        requested_model=record.requested_model,
        upstream=record.upstream,
        upstream_model=record.upstream_model,
        status=record.status,
        stream=record.stream,
        input_tokens=record.input_tokens,
        output_tokens=record.output_tokens,
        cache_creation_input_tokens=record.cache_creation_input_tokens,
        cache_read_input_tokens=record.cache_read_input_tokens,
        time_to_first_token_ms=record.time_to_first_token_ms,
        duration_ms=record.duration_ms,
        client_disconnected=record.client_disconnected,
        error_type=record.error_type,
    )


def _stamp_last_use(records: list[UsageRecord]) -> None:
    """Each key's `last_used_at`, moved forward only (batches may arrive out of order)."""
    latest: dict[int, float] = {}
    for record in records:
        latest[record.key_id] = max(latest.get(record.key_id, 0.0), record.ended_at)
    stamps = [(key_id, datetime.fromtimestamp(ended_at, tz=UTC)) for key_id, ended_at in sorted(latest.items())]
    if not stamps:
        return
    if connection.vendor != "postgresql":
        for key_id, used_at in stamps:
            ApiKey.objects.filter(pk=key_id).filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=used_at)).update(
                last_used_at=used_at
            )
        return
    table = ApiKey._meta.db_table
    with server_binding_cursor() as cursor:  # one statement for every key of the batch
        cursor.execute(
            f"UPDATE {table} SET last_used_at = stamp.used_at "  # noqa: S608 - the name is ours
            "FROM unnest(%s::bigint[], %s::timestamptz[]) AS stamp(key_id, used_at) "
            f"WHERE {table}.id = stamp.key_id "
            f"AND ({table}.last_used_at IS NULL OR {table}.last_used_at < stamp.used_at)",
            [[key_id for key_id, _ in stamps], [used_at for _, used_at in stamps]],
        )


def usage_delete_old_events(*, now: datetime | None = None) -> int:
    """Delete raw events older than USAGE_RETENTION_DAYS; the rollups stay."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=settings.USAGE_RETENTION_DAYS)
    deleted, _ = UsageEvent.objects.filter(created_at__lt=cutoff).delete()
    return deleted
