"""Reads of gateway state for pages: a key's rate-limit windows, and usage from the rollups."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import QuerySet, Sum

from accounts.models import User
from gateway.limits import read_windows
from gateway.models import Granularity, UsageRollup
from keys.models import ApiKey
from keys.selectors import principal_of

WINDOW_LABELS = {"minute": "Per minute", "5h": "Per 5 hours", "week": "Per week"}


@dataclass(frozen=True)
class WindowUsage:
    name: str
    label: str
    limit: int
    used: int
    remaining: int
    resets_at: datetime


def api_key_window_usage(*, api_key: ApiKey) -> list[WindowUsage]:
    """Each plan window of the key: limit, used, remaining and reset. Counts nothing.

    Empty when the limiter cannot be read (Redis down): the page says so rather than guess.
    """
    decision = read_windows(principal_of(api_key))
    return [
        WindowUsage(
            name=window.name,
            label=WINDOW_LABELS[window.name],
            limit=window.limit,
            used=min(window.used, window.limit),
            remaining=window.remaining,
            resets_at=datetime.fromtimestamp(window.reset_at_ms / 1000, tz=UTC),
        )
        for window in decision.windows
    ]


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
