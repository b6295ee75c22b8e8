"""Hourly and daily sums per key and requested model, and refusal counts per hour: summed in memory,
added in one statement per batch."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from django.db import connection
from django.db.models import F

from gateway.usage.models import Granularity, RefusalRollup, UsageRollup
from gateway.usage.record import USAGE_FIELDS, RefusalCount, UsageRecord
from keys.models import ApiKey

ROLLUP_SUMS = ("requests", "errors", *USAGE_FIELDS)
ROWS_PER_STATEMENT = 1_000

RollupIdentity = tuple[str, int, int, int, str]  # granularity, period start (epoch seconds), key, user, model


def add_to_rollups(records: Iterable[UsageRecord]) -> None:
    """Add records to their hour's and day's rollup rows."""
    rows = sorted(summed_by_period(records).items())  # one order for every drain: no deadlocks between them
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        _upsert(rows[start : start + ROWS_PER_STATEMENT])


def remove_from_rollups(records: Iterable[UsageRecord]) -> None:
    """Take records that were added before back out of their rollup rows (rare: a statement per row)."""
    for (granularity, start, key_id, _, model), counts in sorted(summed_by_period(records).items()):
        UsageRollup.objects.filter(
            granularity=granularity,
            period_start=datetime.fromtimestamp(start, tz=UTC),
            api_key_id=key_id,
            model=model,
        ).update(**{name: F(name) - count for name, count in zip(ROLLUP_SUMS, counts, strict=True)})


def summed_by_period(records: Iterable[UsageRecord]) -> dict[RollupIdentity, list[int]]:
    sums: dict[RollupIdentity, list[int]] = {}
    for record in records:
        hour = int(record.ended_at // 3600) * 3600
        day = hour - hour % 86400
        error = 1 if record.status >= 400 or record.error_type else 0
        counts = (
            1,
            error,
            record.input_tokens,
            record.output_tokens,
            record.cache_creation_input_tokens,
            record.cache_read_input_tokens,
        )
        for identity in (
            (Granularity.HOUR.value, hour, record.key_id, record.user_id, record.requested_model),
            (Granularity.DAY.value, day, record.key_id, record.user_id, record.requested_model),
        ):
            total = sums.get(identity)
            if total is None:
                sums[identity] = list(counts)
            else:
                for index, count in enumerate(counts):
                    total[index] += count
    return sums


def _upsert(rows: list[tuple[RollupIdentity, list[int]]]) -> None:
    # INSERT ... ON CONFLICT DO UPDATE adds atomically: two drains adding to one row both count,
    # and a row created by both at once is not an error (PostgreSQL and SQLite alike).
    table = UsageRollup._meta.db_table
    columns = ("granularity", "period_start", "api_key_id", "user_id", "model", *ROLLUP_SUMS)
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    additions = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in ROLLUP_SUMS)
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([placeholders] * len(rows))} "  # noqa: S608 - names are ours
        f"ON CONFLICT (granularity, period_start, api_key_id, model) DO UPDATE SET {additions}"
    )
    adapt = connection.ops.adapt_datetimefield_value
    parameters: list[object] = []
    for (granularity, start, key_id, user_id, model), counts in rows:
        parameters += [granularity, adapt(datetime.fromtimestamp(start, tz=UTC)), key_id, user_id, model, *counts]
    with connection.cursor() as cursor:
        cursor.execute(sql, parameters)


def add_refusals(refusals: Iterable[RefusalCount]) -> None:
    """Add refusal counts to their hour's rows; a count of a key deleted since stays, without the key."""
    summed: dict[tuple[int, int | None, int | None, str, int], int] = {}
    for refusal in refusals:
        summed[refusal.identity()] = summed.get(refusal.identity(), 0) + refusal.count
    if not summed:
        return
    owners = dict(ApiKey.objects.filter(pk__in={key for _, key, _, _, _ in summed}).values_list("pk", "user_id"))
    rows: dict[tuple[int, int | None, int | None, str, int], int] = {}
    for (hour, key_id, _, model, status), count in summed.items():
        identity = (hour, key_id if key_id in owners else None, owners.get(key_id), model, status)
        rows[identity] = rows.get(identity, 0) + count
    if connection.vendor != "postgresql":
        # The unique constraint needs NULLS NOT DISTINCT (refused keys have none), which only
        # PostgreSQL has: elsewhere (the embedded SQLite) rows are added and readers sum them.
        RefusalRollup.objects.bulk_create(
            RefusalRollup(
                period_start=datetime.fromtimestamp(hour, tz=UTC),
                api_key_id=key_id,
                user_id=user_id,
                model=model,
                status=status,
                count=count,
            )
            for (hour, key_id, user_id, model, status), count in rows.items()
        )
        return
    table = RefusalRollup._meta.db_table
    adapt = connection.ops.adapt_datetimefield_value
    ordered = sorted(rows.items(), key=lambda row: (row[0][0], row[0][1] or 0, row[0][3], row[0][4]))
    for start in range(0, len(ordered), ROWS_PER_STATEMENT):
        chunk = ordered[start : start + ROWS_PER_STATEMENT]
        parameters: list[object] = []
        for (hour, key_id, user_id, model, status), count in chunk:
            parameters += [adapt(datetime.fromtimestamp(hour, tz=UTC)), key_id, user_id, model, status, count]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (period_start, api_key_id, user_id, model, status, count) "  # noqa: S608 - ours
                f"VALUES {', '.join(['(%s, %s, %s, %s, %s, %s)'] * len(chunk))} "
                "ON CONFLICT (period_start, api_key_id, model, status) "
                f"DO UPDATE SET count = {table}.count + excluded.count",
                parameters,
            )
