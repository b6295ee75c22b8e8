"""The plumbing the stand-ins for other providers share (tests/bedrock_stand_in.py,
tests/vertex_stand_in.py): an aiohttp application on a loopback port, on its own event loop in a
daemon thread, with an Anthropic simulator behind it and a client session to ask that simulator."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Self

import aiohttp
from aiohttp import web

from gateway.simulator import SimulatorThread


class StandInServer:
    """Subclasses add their routes (`add_routes`) and what `reset` forgets besides."""

    name = "stand-in"

    def __init__(self) -> None:
        self.simulator = SimulatorThread()
        self.requests: list[dict[str, Any]] = []  # what reached it, after authentication
        self.port = 0
        self.session: aiohttp.ClientSession | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        self.simulator.start()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), name=self.name, daemon=True)
        self._thread.start()
        self._ready.wait()
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join()
        self.simulator.stop()

    def reset(self) -> None:
        self.requests.clear()
        self.simulator.reset()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        app = web.Application()
        self.add_routes(app)
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
        await runner.setup()
        async with aiohttp.ClientSession() as session:
            self.session = session
            try:
                await web.TCPSite(runner, "127.0.0.1", 0).start()
                self.port = runner.addresses[0][1]
                self._ready.set()
                await self._stopping.wait()
            finally:
                await runner.cleanup()
