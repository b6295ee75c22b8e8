"""Fixtures shared by the whole suite."""

from __future__ import annotations

import importlib
import os
import uuid
from collections.abc import Iterator

import pytest
import redis
from django.apps import apps as django_apps
from django.conf import settings
from django.test import Client
from django.test.utils import override_settings

from accounts.models import User
from gateway.simulator import SimulatorThread
from plans.models import Plan
from tests.bedrock_stand_in import BedrockStandIn
from tests.servers import UvicornThread
from tests.vertex_stand_in import VertexStandIn


@pytest.fixture(scope="session", autouse=True)
def private_redis_prefix() -> Iterator[None]:
    """Runs sharing one Redis (a developer's and CI's) must not share rate-limit windows."""
    prefix = f"llmapi-test-{uuid.uuid4().hex[:12]}"
    os.environ["REDIS_KEY_PREFIX"] = prefix  # for gateway processes the tests start
    settings.REDIS_KEY_PREFIX = prefix
    # Django's cache (allauth's rate limits) too; override_settings so the cache handlers are rebuilt.
    cache_prefix = override_settings(CACHES={"default": {**settings.CACHES["default"], "KEY_PREFIX": prefix}})
    cache_prefix.enable()
    yield
    cache_prefix.disable()
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session", autouse=True)
def quiet_request_log() -> None:
    """No line per request in the suite's output (tests/gateway/test_request_log.py turns it on)."""
    os.environ["REQUEST_LOG"] = "0"  # for gateway processes the tests start
    settings.REQUEST_LOG = False


@pytest.fixture(autouse=True)
def fresh_auth_throttle() -> None:
    """Every test starts with no failed authentications counted against 127.0.0.1 in this process."""
    from gateway.auth import failed_auth_throttle

    failed_auth_throttle.clear()


@pytest.fixture
def alice(db) -> User:
    return User.objects.create_user("alice@example.com", "correct horse battery")


@pytest.fixture
def bob(db) -> User:
    return User.objects.create_user("bob@example.com", "correct horse battery")


@pytest.fixture
def admin_client(admin_user, settings) -> Client:
    """pytest-django's admin_client, logged in as the admin requires: allauth's login and a second factor."""
    from tests.staff import enable_totp, log_in_with_second_factor

    # A cache of this test's own: the logins of a whole run from one address would meet allauth's rate limits.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}
    }
    client = Client()
    log_in_with_second_factor(client, user=admin_user, password="password", secret=enable_totp(admin_user))
    return client


def reseed() -> None:
    """Put back the rows data migrations create: a transactional test empties every table."""
    for module, function in (
        ("plans.migrations.0002_seed_plans", "seed_plans"),
        ("plans.migrations.0003_plan_concurrent_requests_per_key", "seed_concurrency"),
        ("plans.migrations.0005_plan_token_limits", "seed_token_limits"),
        ("gateway.migrations.0002_seed_routes", "seed_routes"),
    ):
        getattr(importlib.import_module(module), function)(django_apps, None)


@pytest.fixture(scope="session")
def asgi_server() -> Iterator[UvicornThread]:
    """The whole application (gateway and Django) served over real HTTP for the session."""
    from llmapi.asgi import application

    server = UvicornThread(application).start()
    yield server
    server.stop()


@pytest.fixture
def live_server_db(transactional_db) -> None:
    """Committed data (so the server thread sees it), with the seeded plans and routes."""
    reseed()


class Gateway:
    """A live gateway routed to the simulator, with a key of Alice's to call it."""

    def __init__(self, server: UvicornThread, simulator: object, user: User, key: str) -> None:
        self.base_url = server.base_url
        self.simulator = simulator
        self.user = user
        self.key = key
        self._clients: list[object] = []

    def client(self, **options: object):
        import anthropic

        options.setdefault("max_retries", 0)
        options.setdefault("api_key", self.key)
        client = anthropic.Anthropic(base_url=self.base_url, **options)
        self._clients.append(client)
        return client

    def close_clients(self) -> None:
        """Close every SDK client handed out: one left to the garbage collector may drop its socket
        unclosed, and the ResourceWarning then fails whichever test is running (CI, once)."""
        for client in self._clients:
            client.close()
        self._clients.clear()


@pytest.fixture
def gateway(asgi_server, simulator, live_server_db) -> Iterator[Gateway]:
    from gateway.routing import health
    from gateway.services import upstream_add
    from gateway.usage.writer import usage_writer
    from keys.services import api_key_create

    health.reset()
    usage_writer.recent.clear()
    upstream_add(name="sim", base_url=simulator.base_url, credentials=["sk-ant-sim-primary"])
    # The biggest plan, so that tests not about limits never meet one.
    user = User.objects.create_user("alice@example.com", "correct horse battery", plan=Plan.objects.get(slug="max-20x"))
    key = api_key_create(user=user, name="laptop").secret
    gateway = Gateway(asgi_server, simulator, user, key)
    yield gateway
    gateway.close_clients()


@pytest.fixture
def anthropic_errors():
    import anthropic

    return anthropic


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


@pytest.fixture(scope="session", autouse=True)
def no_connections_left_at_the_end(django_db_setup, django_db_blocker) -> Iterator[None]:
    """Close what the servers the suite ran in its own threads left open on the test database.

    Their request threads keep a connection each, which nothing closes once the server stops; the
    test database cannot be dropped while one is open. Torn down before `django_db_setup`.
    """
    yield
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


# Backends of the other kinds (docs/backends.md), each with a simulator of its own behind it.


@pytest.fixture(scope="session")
def bedrock_server() -> Iterator[BedrockStandIn]:
    server = BedrockStandIn().start()
    yield server
    server.stop()


@pytest.fixture
def bedrock(bedrock_server: BedrockStandIn) -> BedrockStandIn:
    bedrock_server.reset()
    return bedrock_server


@pytest.fixture(scope="session")
def vertex_server() -> Iterator[VertexStandIn]:
    server = VertexStandIn().start()
    yield server
    server.stop()


@pytest.fixture
def vertex(vertex_server: VertexStandIn) -> VertexStandIn:
    from gateway.providers.vertex import access_tokens

    vertex_server.reset()
    access_tokens.forget()
    return vertex_server
