"""Restarting web processes under streaming load, as docs/operations.md tells an operator to.

Two web processes (the production launcher) behind the real nginx. Each is restarted in turn while
it holds open streams: taken out of nginx's upstream, sent SIGTERM, started again, put back. No
stream is cut, new requests keep being served meanwhile, and usage is exact. A stream still open
when a process's grace period runs out ends with an error event the SDKs raise, and is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import orjson
import pytest

from gateway.usage.drain import drain_usage_stream
from gateway.usage.models import UsageEvent
from tests.gateway.test_usage_pipeline import assert_exact, records_in_stream
from tests.helpers import wait_until
from tests.servers import NginxServer, WebServer, web_server

BURST = 200  # streams open on the two processes when one of them is restarted
DELTAS = 20
DELAY_MS = 250  # between deltas: each stream lasts about 5 s
TRICKLE_EVERY_SECONDS = 0.1  # new streams started while a process restarts

STREAM = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 100,
    "stream": True,
    "messages": [{"role": "user", "content": "Tell me a long story"}],
}


@dataclass
class StreamResult:
    status: int = 0
    events: list[str] = field(default_factory=list)
    text_deltas: int = 0
    usage: dict[str, int] = field(default_factory=dict)
    error: dict | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)


async def read_stream(client: httpx.AsyncClient, base_url: str, key: str, result: StreamResult) -> StreamResult:
    headers = {"x-api-key": key, "x-simulator-scenario": "slow"}
    headers |= {"x-simulator-deltas": str(DELTAS), "x-simulator-delay-ms": str(DELAY_MS)}
    try:
        async with client.stream("POST", base_url + "/v1/messages", json=STREAM, headers=headers) as reply:
            result.status = reply.status_code
            async for line in reply.aiter_lines():
                if line.startswith("data: "):
                    take_event(result, orjson.loads(line.removeprefix("data: ")))
    finally:
        result.started.set()  # also when it failed: nobody waits for a stream that never began
    return result


def take_event(result: StreamResult, event: dict) -> None:
    result.events.append(event["type"])
    if event["type"] == "message_start":
        result.usage = dict(event["message"]["usage"])
        result.started.set()
    elif event["type"] == "content_block_delta":
        result.text_deltas += 1
    elif event["type"] == "message_delta":
        result.usage |= event["usage"]
    elif event["type"] == "error":
        result.error = event["error"]


class Traffic:
    """Streams sent through nginx, each a task, all gathered at the end."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, key: str) -> None:
        self.client, self.base_url, self.key = client, base_url, key
        self.tasks: list[asyncio.Task[StreamResult]] = []

    def start_one(self) -> StreamResult:
        result = StreamResult()
        self.tasks.append(asyncio.ensure_future(read_stream(self.client, self.base_url, self.key, result)))
        return result

    async def burst_under_way(self, count: int) -> None:
        """`count` new streams, returning once every one has begun (message_start received)."""
        results = [self.start_one() for _ in range(count)]
        await asyncio.gather(*(result.started.wait() for result in results))

    async def while_running(self, work, *arguments) -> None:
        """Run blocking `work` in a thread, starting a new stream every tick until it is done."""
        done = threading.Event()

        def run() -> None:
            try:
                work(*arguments)
            finally:
                done.set()

        running = asyncio.ensure_future(asyncio.to_thread(run))
        while not done.is_set():
            self.start_one()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(running), TRICKLE_EVERY_SECONDS)
        await running

    async def results(self) -> list[StreamResult]:
        return await asyncio.gather(*self.tasks)


def restart_in_turn(nginx: NginxServer, server: WebServer) -> None:
    """docs/operations.md's rolling restart of one web process."""
    nginx.take_out(server.address)
    assert server.stop() == 0  # returns once its open streams have ended
    server.start()
    nginx.put_back(server.address)


@pytest.fixture
def two_web_processes(unlimited) -> Iterator[list[WebServer]]:
    with web_server(workers=1) as first, web_server(workers=1) as second:
        yield [first, second]


@pytest.fixture
def nginx(two_web_processes, tmp_path) -> Iterator[NginxServer]:
    server = NginxServer(tmp_path, [web.address for web in two_web_processes], {}).start()
    yield server
    server.stop()


def test_restarting_each_web_process_in_turn_cuts_no_stream(unlimited, two_web_processes, nginx, stream_client):
    async def scenario() -> list[StreamResult]:
        limits = httpx.Limits(max_connections=2000, max_keepalive_connections=0)
        verify = ssl.create_default_context(cafile=str(nginx.certificate))
        async with httpx.AsyncClient(verify=verify, limits=limits, timeout=120) as client:
            traffic = Traffic(client, nginx.base_url, unlimited.key)
            for server in two_web_processes:
                await traffic.burst_under_way(BURST)  # about half of them on the process restarted next
                await traffic.while_running(restart_in_turn, nginx, server)
            return await traffic.results()

    results = asyncio.run(scenario())

    assert len(results) > 2 * BURST  # the two bursts, and the streams started during the restarts
    assert [result.status for result in results] == [200] * len(results)
    assert [result.error for result in results if result.error] == []
    assert {result.events[-1] for result in results} == {"message_stop"}
    assert {result.text_deltas for result in results} == {DELTAS}
    wait_until(lambda: records_in_stream(stream_client) == len(results), timeout=30)
    assert drain_usage_stream(client=stream_client) == len(results)
    assert_exact([result.usage for result in results])
    assert not UsageEvent.objects.filter(client_disconnected=True).exists()


def test_a_stream_still_open_when_the_grace_period_ends_gets_an_error_event(unlimited, stream_client):
    with web_server(workers=1, WEB_GRACE_SECONDS="1") as web:

        async def scenario() -> list[StreamResult]:
            async with httpx.AsyncClient(timeout=60) as client:
                traffic = Traffic(client, web.base_url, unlimited.key)
                await traffic.burst_under_way(5)  # 20 deltas 250 ms apart: far longer than the grace
                assert await asyncio.to_thread(web.stop) == 0
                return await traffic.results()

        results = asyncio.run(scenario())

    assert [result.error["type"] for result in results if result.error] == ["overloaded_error"] * 5
    assert all(result.text_deltas < DELTAS for result in results)
    wait_until(lambda: records_in_stream(stream_client) == 5, timeout=30)
    assert drain_usage_stream(client=stream_client) == 5
    events = UsageEvent.objects.all()
    assert [(event.error_type, event.client_disconnected) for event in events] == [("overloaded_error", False)] * 5
