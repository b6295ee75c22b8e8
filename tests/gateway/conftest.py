"""Fixtures for the gateway tests: the scripted Anthropic upstream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.simulator import SimulatorThread


@pytest.fixture(scope="session")
def simulator_server() -> Iterator[SimulatorThread]:
    """One simulator for the whole session: starting a server per test would only cost time."""
    server = SimulatorThread().start()
    yield server
    server.stop()


@pytest.fixture
def simulator(simulator_server: SimulatorThread) -> SimulatorThread:
    """The shared simulator, with no recorded requests, queued failures or refused keys.

    Stream counters restart at zero too; a stream still running from an earlier test would
    still be counted when it ends, so tests that check counters wait for `active_streams == 0`.
    """
    simulator_server.reset()
    return simulator_server
