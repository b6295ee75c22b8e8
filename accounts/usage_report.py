"""The dashboard's usage periods: which rollups a period reads, and series with a point for every hour or day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway.models import Granularity
from gateway.selectors import UsageTotals

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
