"""Usage into the database: events, rollups and each key's last use, exactly once; and retention."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q

from gateway.usage.models import Granularity, UsageEvent, UsageRollup
from gateway.usage.record import USAGE_FIELDS, UsageRecord
from keys.models import ApiKey

logger = logging.getLogger(__name__)


def usage_ingest(*, records: list[UsageRecord]) -> int:
    """Store usage records and add them to the rollups, each exactly once; returns how many were new.

    Safe to run twice on the same records (a redelivered stream entry): ids already stored are
    skipped, and the unique request id makes a concurrent duplicate fail the whole transaction,
    rollups included, so that it is retried rather than counted twice.
    """
    by_id = {record.request_id: record for record in records}
    with transaction.atomic():
        stored = set(UsageEvent.objects.filter(request_id__in=by_id).values_list("request_id", flat=True))
        known_keys = set(
            ApiKey.objects.filter(pk__in={record.key_id for record in records}).values_list("pk", flat=True)
        )
        new = [record for request_id, record in by_id.items() if request_id not in stored]
        orphans = [record for record in new if record.key_id not in known_keys]
        if orphans:  # the account was deleted since: nothing left to count them against
            logger.warning("usage: dropping %d records of deleted keys", len(orphans))
        new = [record for record in new if record.key_id in known_keys]
        UsageEvent.objects.bulk_create(_event(record) for record in new)
        _add_to_rollups(new)
        _stamp_last_use(new)
    return len(new)


def _stamp_last_use(records: list[UsageRecord]) -> None:
    """Each key's `last_used_at`, moved forward only (batches may arrive out of order)."""
    latest: dict[int, float] = {}
    for record in records:
        latest[record.key_id] = max(latest.get(record.key_id, 0.0), record.ended_at)
    for key_id, ended_at in latest.items():
        used_at = datetime.fromtimestamp(ended_at, tz=UTC)
        ApiKey.objects.filter(pk=key_id).filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=used_at)).update(
            last_used_at=used_at
        )


def _event(record: UsageRecord) -> UsageEvent:
    return UsageEvent(
        request_id=record.request_id,
        created_at=datetime.fromtimestamp(record.ended_at, tz=UTC),
        api_key_id=record.key_id,
        user_id=record.user_id,
        requested_model=record.requested_model[:200],
        upstream=record.upstream,
        upstream_model=record.upstream_model[:200],
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


ROLLUP_SUMS = ("requests", "errors", *USAGE_FIELDS)


def _add_to_rollups(records: list[UsageRecord]) -> None:
    sums: dict[tuple[str, datetime, int, int, str], Counter[str]] = defaultdict(Counter)
    for record in records:
        ended = datetime.fromtimestamp(record.ended_at, tz=UTC)
        hour = ended.replace(minute=0, second=0, microsecond=0)
        for granularity, period_start in ((Granularity.HOUR, hour), (Granularity.DAY, hour.replace(hour=0))):
            counts = sums[(granularity, period_start, record.key_id, record.user_id, record.requested_model[:200])]
            counts["requests"] += 1
            counts["errors"] += record.status >= 400 or bool(record.error_type)
            for name in USAGE_FIELDS:
                counts[name] += getattr(record, name)
    for (granularity, period_start, key_id, user_id, model), counts in sums.items():
        identity = {
            "granularity": granularity,
            "period_start": period_start,
            "api_key_id": key_id,
            "model": model,
        }
        # F() increments: two drains adding to one row both count. A row created by both at once
        # fails the unique constraint, and that batch is retried.
        updated = UsageRollup.objects.filter(**identity).update(
            **{name: F(name) + counts[name] for name in ROLLUP_SUMS}
        )
        if not updated:
            UsageRollup.objects.create(**identity, user_id=user_id, **{name: counts[name] for name in ROLLUP_SUMS})


def usage_delete_old_events(*, now: datetime | None = None) -> int:
    """Delete raw events older than USAGE_RETENTION_DAYS; the rollups stay."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=settings.USAGE_RETENTION_DAYS)
    deleted, _ = UsageEvent.objects.filter(created_at__lt=cutoff).delete()
    return deleted
