"""What the gateway's processes have learnt of their backends, told to the admin.

Each process keeps its own health board (gateway/routing.py): which credentials rest and why,
which backends have their circuit open. Its changes of state (a credential resting after a 429 or
a refusal, out of quota, a circuit opening, and each back in service once it answers again) are
written to one Redis hash on REDIS_URL, shared by every process, off the hot path: a write runs in
a task of its own and takes whatever changed meanwhile, so a storm of 429s costs a few writes. The
admin (gateway/admin.py) reads the last report on each credential and backend. Without Redis
(embedded mode) the reports stay in this process, which also serves the admin.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
import redis.asyncio
from django.conf import settings

from gateway.side_redis import plain_side_redis

logger = logging.getLogger(__name__)

Report = dict[str, Any]  # state, reason, until (epoch seconds or None), at (epoch seconds)


def credential_subject(credential_id: int) -> str:
    return f"credential:{credential_id}"


def upstream_subject(upstream_id: int) -> str:
    return f"upstream:{upstream_id}"


def reports_key() -> str:
    return f"{settings.REDIS_KEY_PREFIX}:backend-health"


class HealthReports:
    def __init__(self) -> None:
        self._pending: dict[str, bytes] = {}
        self._writing: asyncio.Task[None] | None = None
        self.local: dict[str, Report] = {}  # embedded mode

    def report(self, subject: str, state: str, reason: str = "", until: float | None = None) -> None:
        """`subject` is now in `state` (for `reason`, until the wall-clock time `until`)."""
        entry: Report = {"state": state, "reason": reason, "until": until, "at": time.time()}
        if not settings.REDIS_URL:
            self.local[subject] = entry
            return
        self._pending[subject] = orjson.dumps(entry)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not in the gateway's loop (a command, a test): written by the next one
            return
        if self._writing is None or self._writing.done():
            self._writing = loop.create_task(self._write(), name="backend-health-reports")

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, {}
            try:
                await plain_side_redis().hset(reports_key(), mapping=batch)
            except (redis.RedisError, OSError, TimeoutError) as exc:
                logger.warning("backend health reports not written (%d): %r", len(batch), exc)
                return

    def clear(self) -> None:
        self._pending.clear()
        self.local.clear()


reports = HealthReports()


def read_reports(subjects: list[str]) -> dict[str, Report]:
    """The last report on each subject, from whichever process made it (for the admin, a thread)."""
    if not settings.REDIS_URL:
        return {subject: reports.local[subject] for subject in subjects if subject in reports.local}
    if not subjects:
        return {}
    try:
        with redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1) as client:
            values = client.hmget(reports_key(), subjects)
    except (redis.RedisError, OSError) as exc:
        logger.warning("backend health reports not read: %r", exc)
        return {}
    return {subject: orjson.loads(value) for subject, value in zip(subjects, values, strict=True) if value}


def describe(report: Report | None) -> str:
    """One line for the admin: the state, why, until when, and when it was seen."""
    if report is None:
        return "no trouble reported"
    words = report["state"]
    if report.get("reason"):
        words += f": {report['reason']}"
    if report.get("until") and report["until"] > time.time():
        words += f", until {utc(report['until'])}"
    return f"{words} (seen {utc(report['at'])})"


def utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
