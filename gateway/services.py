"""Changes to backends, routes and usage, shared by the admin, the commands, the gateway and tasks."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from gateway.cache import in_database_thread
from gateway.models import (
    Granularity,
    ModelRoute,
    RouteTarget,
    Upstream,
    UpstreamCredential,
    UpstreamKind,
    UsageEvent,
    UsageRollup,
)
from gateway.usage import USAGE_FIELDS, UsageRecord
from keys.models import ApiKey
from llmapi.invalidation import publish

logger = logging.getLogger(__name__)

EVERY_CLAUDE_MODEL = "claude-*"


@transaction.atomic
def upstream_add(
    *,
    name: str,
    kind: str = UpstreamKind.ANTHROPIC,
    base_url: str,
    credentials: list[str],
    model_globs: list[str] | None = None,
) -> Upstream:
    """Create or update an upstream, add its credentials, and route the given models to it.

    Each model glob gets a route if it has none; the upstream becomes that route's last target,
    so a second upstream added for the same models is its fallback.
    """
    upstream, _ = Upstream.objects.update_or_create(
        name=name, defaults={"kind": kind, "base_url": base_url.rstrip("/"), "enabled": True}
    )
    known = set(upstream.credentials.values_list("secret", flat=True))
    for secret in credentials:
        if secret not in known:
            UpstreamCredential.objects.create(upstream=upstream, secret=secret)
    for glob in model_globs or [EVERY_CLAUDE_MODEL]:
        route, _ = ModelRoute.objects.get_or_create(pattern=glob)
        if not route.targets.filter(upstream=upstream, upstream_model="").exists():
            last = route.targets.aggregate(last=Max("position"))["last"]
            RouteTarget.objects.create(route=route, upstream=upstream, position=0 if last is None else last + 1)
    publish("routes")
    return upstream


def _credential_disable(credential_id: int, reason: str) -> None:
    UpstreamCredential.objects.filter(pk=credential_id).update(
        enabled=False, disabled_reason=reason[:200], disabled_at=timezone.now()
    )
    publish("routes")


async def upstream_credential_disable(*, credential_id: int, reason: str) -> None:
    """Take a credential the upstream refused out of service, in every process."""
    await in_database_thread(_credential_disable)(credential_id, reason)


def upstream_credentials_reencrypt() -> int:
    """Encrypt every stored credential with the newest key (the first of UPSTREAM_SECRET_KEYS).

    Loading decrypts with whichever key fits and saving encrypts with the first. Each row is
    locked while it is rewritten, so that a credential the admin changes at that moment is not
    overwritten with its old value. Returns how many were rewritten.
    """
    count = 0
    for credential_id in UpstreamCredential.objects.values_list("pk", flat=True):
        with transaction.atomic():
            credential = UpstreamCredential.objects.select_for_update().filter(pk=credential_id).first()
            if credential is not None:  # deleted meanwhile
                credential.save(update_fields=["secret"])
                count += 1
    return count


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
