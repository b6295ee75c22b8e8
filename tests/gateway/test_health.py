"""/healthz and /readyz (issue 16): cheap, outside every quota, and honest about PostgreSQL and Redis."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import httpx

from gateway.shutdown import shutdown_state
from tests.helpers import wait_until
from tests.servers import RedisServer, TcpProxy, database_url_of_tests, gateway_process


def readiness(base_url: str) -> tuple[int, dict[str, str]]:
    response = httpx.get(base_url + "/readyz", timeout=10)
    return response.status_code, response.json()


def test_healthz_answers_from_the_process_alone(gateway):
    response = httpx.get(gateway.base_url + "/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert response.headers["cache-control"] == "no-store"
    head = httpx.head(gateway.base_url + "/healthz")
    assert (head.status_code, head.content) == (200, b"")
    refused = httpx.post(gateway.base_url + "/readyz")
    assert (refused.status_code, refused.headers["allow"]) == (405, "GET, HEAD")


def test_readyz_is_ready_when_the_database_and_redis_answer(gateway):
    assert readiness(gateway.base_url) == (200, {"status": "ok", "database": "ok", "redis": "ok"})


def test_readyz_turns_503_once_the_process_drains(gateway):
    shutdown_state.begin_draining()
    try:
        assert readiness(gateway.base_url) == (503, {"status": "draining"})
        assert httpx.get(gateway.base_url + "/healthz").status_code == 200  # alive all the same
    finally:
        shutdown_state.draining = False


def test_readyz_without_redis_asks_the_database_only(gateway):
    with gateway_process(REDIS_URL="") as base_url:
        assert readiness(base_url) == (200, {"status": "ok", "database": "ok"})


def test_readyz_turns_503_while_redis_is_stopped_and_200_once_it_is_back(gateway):
    private_redis = RedisServer().start()
    try:
        with gateway_process(REDIS_URL=private_redis.url) as base_url:
            assert readiness(base_url)[0] == 200
            private_redis.stop()
            wait_until(lambda: readiness(base_url)[0] == 503)
            assert readiness(base_url)[1] == {"status": "unavailable", "database": "ok", "redis": "unreachable"}
            private_redis.start()
            wait_until(lambda: readiness(base_url)[0] == 200)
    finally:
        private_redis.stop()


def test_readyz_turns_503_while_postgresql_is_unreachable_and_200_once_it_is_back(gateway):
    database = urlsplit(database_url_of_tests())
    proxy = TcpProxy(database.port or 5432).start()
    through_proxy = urlunsplit(database._replace(netloc=f"{database.username}@127.0.0.1:{proxy.port}"))
    try:
        with gateway_process(DATABASE_URL=through_proxy) as base_url:
            assert readiness(base_url)[0] == 200
            proxy.cut()
            wait_until(lambda: readiness(base_url)[0] == 503)
            assert readiness(base_url)[1] == {"status": "unavailable", "database": "unreachable", "redis": "ok"}
            proxy.restore()
            wait_until(lambda: readiness(base_url)[0] == 200)
    finally:
        proxy.stop()
