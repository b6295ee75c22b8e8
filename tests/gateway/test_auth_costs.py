"""Failed authentication is cheap: bounded caches, a per-client throttle before the database, lookups
that a flood of made-up keys cannot starve (issue 10). Clients bind their own loopback addresses
(127.0.0.0/8 is all loopback), so that the server sees several client addresses."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from gateway import auth
from gateway.errors import GatewayError
from keys import keyformat
from keys.services import api_key_create
from llmapi.proxies import forwarded_allow_ips
from tests.gateway.test_hot_path_costs import database_queries  # noqa: F401 - a fixture used below

HELLO = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "Hello"}]}
ATTACKER_ADDRESSES = [f"127.0.1.{number}" for number in range(1, 21)]
LEGITIMATE_ADDRESS = "127.0.0.2"
# The client and the server share this process's GIL: under a flood a kept-alive connection can sit
# idle past uvicorn's keep-alive timeout and be closed just as it is reused. A connection per request.
CLOSE_EACH_CONNECTION = {"connection": "close"}


def made_up_key() -> str:
    """Well-formed (the checksum is public), known to nobody."""
    return keyformat.generate_key()


def client_from(address: str, base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, transport=httpx.HTTPTransport(local_address=address), timeout=60)


def async_client_from(address: str, base_url: str, **options: object) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=base_url, transport=transport, timeout=60, **options)


def assert_throttled(response: httpx.Response) -> None:
    assert response.status_code == 429
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"
    assert body["request_id"] == response.headers["request-id"]
    assert int(response.headers["retry-after"]) >= 1


def test_repeated_failures_get_429_before_any_database_query(gateway, database_queries):  # noqa: F811
    limit = auth.failed_auth_throttle.limit
    with client_from(ATTACKER_ADDRESSES[0], gateway.base_url) as client:
        assert client.post("/v1/messages", json=HELLO, headers={"x-api-key": gateway.key}).status_code == 200
        for _ in range(limit):
            assert client.post("/v1/messages", json=HELLO, headers={"x-api-key": made_up_key()}).status_code == 401
        database_queries.count = 0
        for _ in range(5):
            assert_throttled(client.post("/v1/messages", json=HELLO, headers={"x-api-key": made_up_key()}))
        assert database_queries.count == 0
        # A key this process has cached is still served to that address; a cold one must wait.
        assert client.post("/v1/messages", json=HELLO, headers={"x-api-key": gateway.key}).status_code == 200
        cold = api_key_create(user=gateway.user, name="cold").secret
        assert_throttled(client.post("/v1/messages", json=HELLO, headers={"x-api-key": cold}))

    with client_from(LEGITIMATE_ADDRESS, gateway.base_url) as neighbour:  # other addresses are not affected
        assert neighbour.post("/v1/messages", json=HELLO, headers={"x-api-key": cold}).status_code == 200


def test_through_the_sdk_the_throttle_is_a_rate_limit_error(gateway, anthropic_errors):
    sdk = gateway.client(api_key=made_up_key())
    for _ in range(auth.failed_auth_throttle.limit):
        with pytest.raises(anthropic_errors.AuthenticationError):
            sdk.messages.create(**HELLO)
    with pytest.raises(anthropic_errors.RateLimitError) as refused:
        sdk.messages.create(**HELLO)
    assert refused.value.body["error"]["type"] == "rate_limit_error"


def test_a_repeated_unknown_key_is_answered_from_the_cache(gateway, database_queries):  # noqa: F811
    key = made_up_key()
    with client_from(ATTACKER_ADDRESSES[1], gateway.base_url) as client:
        assert client.post("/v1/messages", json=HELLO, headers={"x-api-key": key}).status_code == 401
        database_queries.count = 0
        assert client.post("/v1/messages", json=HELLO, headers={"x-api-key": key}).status_code == 401
    assert database_queries.count == 0


def test_forwarded_for_is_not_trusted_unless_configured(gateway):
    assert forwarded_allow_ips() == ""  # the suite configures no proxy, and the servers follow it
    limit = auth.failed_auth_throttle.limit
    with client_from(ATTACKER_ADDRESSES[2], gateway.base_url) as client:
        for number in range(limit):
            spoofed = {"x-api-key": made_up_key(), "x-forwarded-for": f"203.0.113.{number}"}
            assert client.post("/v1/messages", json=HELLO, headers=spoofed).status_code == 401
        spoofed = {"x-api-key": made_up_key(), "x-forwarded-for": "198.51.100.7"}
        assert_throttled(client.post("/v1/messages", json=HELLO, headers=spoofed))


def test_trusted_proxies_become_uvicorns_forwarded_allow_ips(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.5", "192.0.2.0/24"]
    assert forwarded_allow_ips() == "10.0.0.5,192.0.2.0/24"


async def flood(base_url: str, requests_per_address: int) -> list[int]:
    """Made-up keys from every attacker address at once, 10 connections each."""

    async def attack(address: str) -> list[int]:
        async with async_client_from(address, base_url, headers=CLOSE_EACH_CONNECTION) as client:

            async def one() -> int:
                response = await client.post("/v1/messages", json=HELLO, headers={"x-api-key": made_up_key()})
                return response.status_code

            statuses = []
            for _ in range(0, requests_per_address, 10):
                statuses += await asyncio.gather(*(one() for _ in range(10)))
            return statuses

    per_address = await asyncio.gather(*(attack(address) for address in ATTACKER_ADDRESSES))
    return [status for statuses in per_address for status in statuses]


def test_a_flood_of_made_up_keys_beside_a_legitimate_client(gateway, database_queries, monkeypatch):  # noqa: F811
    # A small bound, so that the flood overflows the cache of unknown hashes many times over. (The
    # throttle's table keeps room for every attacker: were it full, it would forget their counts.)
    monkeypatch.setattr(auth._unknown_hashes, "max_entries", 100)
    monkeypatch.setattr(auth.failed_auth_throttle._counts, "max_entries", len(ATTACKER_ADDRESSES) + 1)
    fresh_key = api_key_create(user=gateway.user, name="first use during the flood").secret
    sizes_seen: list[dict[str, int]] = []
    legitimate_statuses: list[int] = []

    async def legitimate_client(flooding: asyncio.Task) -> None:
        async with async_client_from(LEGITIMATE_ADDRESS, gateway.base_url, headers=CLOSE_EACH_CONNECTION) as client:
            while not flooding.done() or not legitimate_statuses:
                for key in (fresh_key, gateway.key):
                    response = await client.post("/v1/messages", json=HELLO, headers={"x-api-key": key})
                    legitimate_statuses.append(response.status_code)
                sizes_seen.append(auth.cache_sizes())

    async def both() -> list[int]:
        flooding = asyncio.create_task(flood(gateway.base_url, requests_per_address=100))
        await legitimate_client(flooding)
        return await flooding

    attack_statuses = asyncio.run(both())

    assert len(attack_statuses) == 2_000
    assert set(attack_statuses) <= {401, 429}
    assert set(legitimate_statuses) == {200}
    assert all(sizes["unknown_hashes"] <= 100 and sizes["throttled_clients"] <= 21 for sizes in sizes_seen)
    # Each attacker address reached the database at most `limit` times, plus its lookups in flight.
    most_lookups = len(ATTACKER_ADDRESSES) * (auth.failed_auth_throttle.limit + auth.lookups_in_flight.limit)
    assert database_queries.count <= most_lookups + 10  # + the legitimate key's first lookup


def test_many_new_keys_from_one_address_at_once_wait_their_turn(gateway):
    """More fresh keys at once than lookups may run per address: the rest queue, none is refused."""
    fresh_keys = [api_key_create(user=gateway.user, name=f"teammate {n}").secret for n in range(9)]
    assert len(fresh_keys) > auth.lookups_in_flight.limit

    async def all_at_once() -> list[int]:
        async with async_client_from(ATTACKER_ADDRESSES[3], gateway.base_url) as client:
            responses = await asyncio.gather(
                *(client.post("/v1/messages", json=HELLO, headers={"x-api-key": key}) for key in fresh_keys)
            )
        return [response.status_code for response in responses]

    assert asyncio.run(all_at_once()) == [200] * len(fresh_keys)
    assert auth.cache_sizes()["lookups_in_flight"] == 0


class TestLookupTurns:
    """The queue of key lookups per address, on its own: who runs, who waits, who is refused."""

    @staticmethod
    async def hold(lookups: auth.LookupsInFlight, client: str, started: list[int], release: asyncio.Event, n: int):
        async with lookups.slot(client):
            started.append(n)
            await release.wait()

    def test_past_the_running_limit_lookups_wait_in_order_and_past_the_queue_get_429(self):
        async def scenario() -> None:
            lookups = auth.LookupsInFlight(limit_per_client=2, waiting_per_client=3)
            started: list[int] = []
            release = asyncio.Event()
            tasks = [asyncio.create_task(self.hold(lookups, "a", started, release, n)) for n in range(5)]
            await wait_until(lambda: len(started) == 2)
            with pytest.raises(GatewayError) as refused:
                async with lookups.slot("a"):
                    pass
            assert refused.value.status == 429
            async with lookups.slot("b"):  # another address is not affected
                pass
            release.set()
            await asyncio.gather(*tasks)
            assert started == [0, 1, 2, 3, 4]
            assert len(lookups) == 0

        asyncio.run(scenario())

    def test_a_waiter_that_goes_away_gives_up_its_place(self):
        async def scenario() -> None:
            lookups = auth.LookupsInFlight(limit_per_client=1, waiting_per_client=1)
            started: list[int] = []
            release = asyncio.Event()
            running = asyncio.create_task(self.hold(lookups, "a", started, release, 0))
            await wait_until(lambda: started == [0])
            waiter = asyncio.create_task(self.hold(lookups, "a", started, release, 1))
            await wait_until(lambda: len(lookups._clients["a"].waiting) == 1)
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
            late = asyncio.create_task(self.hold(lookups, "a", started, release, 2))  # the place is free again
            await wait_until(lambda: len(lookups._clients["a"].waiting) == 1)
            release.set()
            await asyncio.gather(running, late)
            assert started == [0, 2]
            assert len(lookups) == 0

        asyncio.run(scenario())


async def wait_until(condition) -> None:
    """Let the other tasks run until `condition` holds (they need only a few turns of the loop)."""
    for _ in range(1_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")
