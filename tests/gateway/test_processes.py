"""Several gateway processes: a change made anywhere reaches every process's cache at once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from django.conf import settings

from keys.models import ApiKey
from keys.services import api_key_revoke
from tests.helpers import PROJECT_DIR, free_port, stop_process, wait_for_http, wait_until

HELLO = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "Hello"}]}


def database_url() -> str:
    database = settings.DATABASES["default"]  # the test database pytest-django created
    return f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"


@pytest.fixture
def gateway_process(gateway) -> Iterator[str]:
    """A second gateway, in its own process, on the same database and Redis."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url(), "DEBUG": "0"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "llmapi.asgi:application",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=PROJECT_DIR,
        env=env,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base_url + "/v1/models", process)
        yield base_url
    finally:
        stop_process(process)


def status_of(base_url: str, key: str) -> int:
    return httpx.post(base_url + "/v1/messages", json=HELLO, headers={"x-api-key": key}).status_code


def test_a_revoked_key_stops_working_in_another_process_within_a_second(gateway, gateway_process):
    assert status_of(gateway_process, gateway.key) == 200  # the key is now cached over there
    api_key_revoke(user=gateway.user, key_id=ApiKey.objects.get().pk)
    wait_until(lambda: status_of(gateway_process, gateway.key) == 401, timeout=1.0)


def test_a_disabled_account_is_refused_in_another_process(gateway, gateway_process):
    assert status_of(gateway_process, gateway.key) == 200
    gateway.user.is_active = False
    gateway.user.save()
    wait_until(lambda: status_of(gateway_process, gateway.key) == 403, timeout=1.0)


def test_a_route_change_reaches_another_process(gateway, gateway_process):
    from gateway.models import Upstream

    assert status_of(gateway_process, gateway.key) == 200
    for upstream in Upstream.objects.all():
        upstream.enabled = False
        upstream.save()
    wait_until(lambda: status_of(gateway_process, gateway.key) == 503, timeout=1.0)
