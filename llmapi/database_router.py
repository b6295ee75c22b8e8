"""Dashboard reports may read from a PostgreSQL replica (DATABASE_REPLICA_URL; off when unset).

Only code that asks for it reads from the replica: the views decorated with `reads_from_replica`
(the usage page and its CSV export), which read rollups the Celery drain wrote seconds earlier
and so never need what was written a moment ago. Everything else, the gateway, sign-in, keys,
billing and every write, uses the primary, so that nobody fails to read what they just wrote.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings

REPLICA = "replica"

_reading_reports: ContextVar[bool] = ContextVar("reading_reports", default=False)


@contextmanager
def reports_from_replica() -> Iterator[None]:
    token = _reading_reports.set(True)
    try:
        yield
    finally:
        _reading_reports.reset(token)


def reads_from_replica(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with reports_from_replica():
            return view(*args, **kwargs)

    return wrapped


class ReplicaRouter:
    def db_for_read(self, model: type, **hints: Any) -> str | None:
        if _reading_reports.get() and settings.DATABASE_REPLICA_URL:
            return REPLICA
        return None  # the primary

    def db_for_write(self, model: type, **hints: Any) -> str | None:
        return None

    def allow_relation(self, first: object, second: object, **hints: Any) -> bool:
        return True  # one database and its copy

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db != REPLICA  # the replica follows the primary's schema by replication
