"""The timed full collections outlive a collection that raises."""

from __future__ import annotations

import asyncio

from gateway import gc_tuning


class CollectorThatRaisesOnce:
    def __init__(self) -> None:
        self.calls = 0

    def collect(self) -> int:
        self.calls += 1
        if self.calls == 1:  # as a finalizer's ResourceWarning does under the suite's "error" filter
            raise ResourceWarning("unclosed <socket.socket>")
        return 0


async def test_a_collection_that_raises_does_not_end_the_collections(monkeypatch):
    collector = CollectorThatRaisesOnce()
    monkeypatch.setattr(gc_tuning, "gc", collector)
    task = asyncio.ensure_future(gc_tuning._collect_fully_every(0))
    try:
        for _ in range(1000):  # turns of the event loop, each a chance for the task to collect again
            if collector.calls >= 3 or task.done():
                break
            await asyncio.sleep(0)
        assert collector.calls >= 3
        assert not task.done()
    finally:
        task.cancel()
