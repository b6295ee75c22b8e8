"""Reads of usage for pages, the REST API and the admin: the one way out of the usage tables.

Pages read the rollups, never the raw events: totals, series (with the dashboard's periods, a
point for every hour or day), breakdowns per key and model, CSV rows, and the admin's summary.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import QuerySet, Sum

from accounts.models import User
from gateway.usage.models import Granularity, UsageRollup
from keys.models import ApiKey

USAGE_SUMS = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)


@dataclass(frozen=True)
class UsageTotals:
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    @property
    def cache_hit_rate(self) -> float | None:
        """The share of the prompt read from the cache (0 to 1); None when no prompt was sent."""
        prompt = self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens
        return self.cache_read_input_tokens / prompt if prompt else None


def _totals(row: dict[str, int | None]) -> UsageTotals:
    return UsageTotals(**{name: row.get(name) or 0 for name in USAGE_SUMS})


def _sums() -> dict[str, Sum]:
    return {name: Sum(name) for name in USAGE_SUMS}


def _rollups(
    *, user: User, granularity: str, since: datetime, api_key_id: int | None = None, model: str | None = None
) -> QuerySet[UsageRollup]:
    rollups = UsageRollup.objects.filter(user=user, granularity=granularity, period_start__gte=since)
    if api_key_id is not None:
        rollups = rollups.filter(api_key_id=api_key_id)
    if model is not None:
        rollups = rollups.filter(model=model)
    return rollups


def usage_totals(*, user: User, since: datetime) -> UsageTotals:
    return _totals(_rollups(user=user, granularity=Granularity.HOUR, since=since).aggregate(**_sums()))


def usage_key_totals(*, api_key_id: int, since: datetime) -> UsageTotals:
    """One key's totals since `since` (an hour's start), whoever owns it."""
    rollups = UsageRollup.objects.filter(api_key_id=api_key_id, granularity=Granularity.HOUR, period_start__gte=since)
    return _totals(rollups.aggregate(**_sums()))


def usage_series(
    *,
    user: User,
    granularity: str,
    since: datetime,
    api_key_id: int | None = None,
    model: str | None = None,
) -> list[tuple[datetime, UsageTotals]]:
    """One point per hour or day with usage, oldest first (periods without usage are absent)."""
    rows = (
        _rollups(user=user, granularity=granularity, since=since, api_key_id=api_key_id, model=model)
        .values("period_start")
        .annotate(**_sums())
        .order_by("period_start")
    )
    return [(row["period_start"], _totals(row)) for row in rows]


def usage_by_key(*, user: User, since: datetime) -> list[tuple[ApiKey, UsageTotals]]:
    rows = (
        _rollups(user=user, granularity=Granularity.HOUR, since=since)
        .values("api_key_id")
        .annotate(**_sums())
        .order_by("-requests")
    )
    keys = ApiKey.objects.in_bulk([row["api_key_id"] for row in rows])
    return [(keys[row["api_key_id"]], _totals(row)) for row in rows]


def usage_by_model(*, user: User, since: datetime) -> list[tuple[str, UsageTotals]]:
    rows = (
        _rollups(user=user, granularity=Granularity.HOUR, since=since)
        .values("model")
        .annotate(**_sums())
        .order_by("-requests")
    )
    return [(row["model"], _totals(row)) for row in rows]


def usage_by_key_and_model(*, user: User, since: datetime) -> list[tuple[ApiKey, str, UsageTotals]]:
    """Each key's use of each model, most requests first: where the prompt cache works and where it does not."""
    rows = (
        _rollups(user=user, granularity=Granularity.HOUR, since=since)
        .values("api_key_id", "model")
        .annotate(**_sums())
        .order_by("-requests", "api_key_id", "model")
    )
    keys = ApiKey.objects.in_bulk([row["api_key_id"] for row in rows])
    return [(keys[row["api_key_id"]], row["model"], _totals(row)) for row in rows]


def usage_export_rows(
    *, user: User, granularity: str, since: datetime, api_key_id: int | None = None, model: str | None = None
) -> Iterator[list[object]]:
    """The rows of a CSV export, header first: one per period, key and model (optionally one key or model)."""
    yield ["period_start", "key", "model", *USAGE_SUMS]
    rows = (
        _rollups(user=user, granularity=granularity, since=since, api_key_id=api_key_id, model=model)
        .select_related("api_key")
        .order_by("period_start", "api_key_id", "model")
    )
    for row in rows:
        yield [row.period_start.isoformat(), row.api_key.name, row.model, *(getattr(row, name) for name in USAGE_SUMS)]


def usage_top_users(*, since: datetime, limit: int = 20) -> list[dict[str, object]]:
    """For the admin: the heaviest users since a time."""
    return list(
        UsageRollup.objects.filter(granularity=Granularity.HOUR, period_start__gte=since)
        .values("user_id", "user__email")
        .annotate(**_sums())
        .order_by("-requests")[:limit]
    )


def usage_top_keys(*, since: datetime, limit: int = 20) -> list[dict[str, object]]:
    """For the admin: the busiest keys since a time."""
    return list(
        UsageRollup.objects.filter(granularity=Granularity.HOUR, period_start__gte=since)
        .values("api_key_id", "api_key__name", "api_key__prefix", "api_key__last_four", "user__email")
        .annotate(**_sums())
        .order_by("-requests")[:limit]
    )


# The dashboard's periods: which rollups a period reads, and series with a point for every bucket.

ZERO = UsageTotals()


@dataclass(frozen=True)
class Period:
    slug: str
    label: str
    granularity: str
    points: int  # hours or days, the current one included

    @property
    def step(self) -> timedelta:
        return timedelta(hours=1) if self.granularity == Granularity.HOUR else timedelta(days=1)

    def start(self, now: datetime) -> datetime:
        """The first hour or day of the period, so that it holds `points` whole buckets ending with the current one."""
        current = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        if self.granularity == Granularity.DAY:
            current = current.replace(hour=0)
        return current - self.step * (self.points - 1)

    def buckets(self, now: datetime) -> list[datetime]:
        first = self.start(now)
        return [first + self.step * index for index in range(self.points)]


PERIODS = {
    period.slug: period
    for period in (
        Period("24h", "Last 24 hours, by hour", Granularity.HOUR, 24),
        Period("7d", "Last 7 days, by day", Granularity.DAY, 7),
        Period("30d", "Last 30 days, by day", Granularity.DAY, 30),
    )
}
DEFAULT_PERIOD = "7d"


def filled_series(
    *, period: Period, now: datetime, points: list[tuple[datetime, UsageTotals]]
) -> list[tuple[datetime, UsageTotals]]:
    """Every bucket of the period, with zeros where nothing was used (the rollups only hold busy ones)."""
    by_start = {start.astimezone(UTC): totals for start, totals in points}
    return [(start, by_start.get(start, ZERO)) for start in period.buckets(now)]
