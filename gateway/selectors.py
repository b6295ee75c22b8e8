"""Reads of gateway state for pages: a key's rate-limit windows (usage: gateway/usage/selectors.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.limits import read_windows
from keys.models import ApiKey
from keys.selectors import principal_of

WINDOW_LABELS = {
    "minute": "Per minute",
    "5h": "Per 5 hours",
    "week": "Per week",
    "input-tokens": "Input tokens per minute",
    "output-tokens": "Output tokens per minute",
}


@dataclass(frozen=True)
class WindowUsage:
    name: str
    label: str
    limit: int
    used: int
    remaining: int
    resets_at: datetime


def api_key_window_usage(*, api_key: ApiKey) -> list[WindowUsage]:
    """Each plan window of the key (requests, then the token windows its plan sets): limit, used,
    remaining and reset. Counts nothing.

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
        for window in (*decision.windows, *decision.tokens)
    ]
