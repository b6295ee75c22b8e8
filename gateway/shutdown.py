"""A web process's graceful shutdown, as the gateway sees it (docs/operations.md, rolling restarts).

On SIGTERM the server stops accepting connections and lets the requests in flight finish, for up
to WEB_GRACE_SECONDS; then it cancels what is left and runs the lifespan's shutdown, which
flushes usage and request lines. Two facts are kept here for that: whether the process is
draining (so that a stream cut when the grace period runs out is told from a client that left)
and how many gateway requests are still open (so that the flush waits for their accounting).
"""

from __future__ import annotations

import asyncio
import contextlib

FINISHING_SECONDS = 5.0  # for cancelled requests to run their accounting before usage is flushed


class ShutdownState:
    def __init__(self) -> None:
        self.draining = False
        self.open_requests = 0
        self._all_ended: asyncio.Event | None = None  # made only when shutdown waits for it

    def begin_draining(self) -> None:
        self.draining = True

    def request_started(self) -> None:
        self.open_requests += 1

    def request_ended(self) -> None:
        self.open_requests -= 1
        if not self.open_requests and self._all_ended is not None:
            self._all_ended.set()

    async def wait_for_open_requests(self) -> int:
        """Wait until every open request has ended (cancelled ones run their `finally` first), for
        at most FINISHING_SECONDS; returns how many were still open then."""
        if self.open_requests:
            self._all_ended = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FINISHING_SECONDS):
                    await self._all_ended.wait()
        return self.open_requests


shutdown_state = ShutdownState()
