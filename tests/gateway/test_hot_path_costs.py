"""What a warm request costs outside the process: no database query, at most two Redis round trips."""

from __future__ import annotations

import threading

import httpx
import pytest
import redis.asyncio.connection
from django.db.backends.signals import connection_created

from gateway.usage.writer import usage_writer
from llmapi.invalidation import deliver_locally
from tests.helpers import wait_until

HELLO = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "Hello"}]}
REQUESTS = 50


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.count += 1


@pytest.fixture
def database_queries() -> Counter:
    """Counts queries on every database connection opened from now on, in any thread."""
    counter = Counter()

    def count_query(execute, sql, params, many, context):
        counter.add()
        return execute(sql, params, many, context)

    def instrument(sender, connection, **kwargs) -> None:
        # A thread's connection object is reused after a reconnect: wrap it once, not once per connect.
        if count_query not in connection.execute_wrappers:
            connection.execute_wrappers.append(count_query)

    connection_created.connect(instrument, dispatch_uid="count-queries")
    yield counter
    connection_created.disconnect(dispatch_uid="count-queries")


@pytest.fixture
def redis_round_trips(monkeypatch) -> Counter:
    """Counts writes to Redis connections: one per round trip (a pipeline sends its commands at once)."""
    counter = Counter()
    original = redis.asyncio.connection.AbstractConnection.send_packed_command

    async def counted(self, command, check_health=True):
        counter.add()
        return await original(self, command, check_health)

    monkeypatch.setattr(redis.asyncio.connection.AbstractConnection, "send_packed_command", counted)
    return counter


def send(gateway, count: int) -> None:
    with httpx.Client(base_url=gateway.base_url, headers={"x-api-key": gateway.key}) as client:
        for _ in range(count):
            assert client.post("/v1/messages", json=HELLO).status_code == 200


def test_a_warm_request_makes_no_database_query(gateway, database_queries):
    send(gateway, 1)  # warms the key and route caches
    wait_until(lambda: usage_writer.pending == 0)
    database_queries.count = 0
    send(gateway, REQUESTS)
    wait_until(lambda: usage_writer.pending == 0)
    assert database_queries.count == 0

    deliver_locally("*")  # cold caches: now the counter must see the loads
    send(gateway, 1)
    assert database_queries.count >= 2  # the key's principal and the route table


def test_a_request_costs_at_most_two_redis_round_trips(gateway, redis_round_trips):
    send(gateway, 1)
    wait_until(lambda: usage_writer.pending == 0)
    redis_round_trips.count = 0
    send(gateway, REQUESTS)
    wait_until(lambda: usage_writer.pending == 0)
    # One limiter decision each, and the usage XADDs with the release of each request's slot in flight
    # (pipelined, so often fewer than one each).
    assert REQUESTS <= redis_round_trips.count <= 2 * REQUESTS
