"""Several gateway processes: a change made anywhere reaches every process's cache at once."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from keys.models import ApiKey
from keys.services import api_key_revoke
from tests.helpers import wait_until
from tests.servers import gateway_process

HELLO = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "Hello"}]}


@pytest.fixture
def other_process(gateway) -> Iterator[str]:
    """A second gateway, in its own process, on the same database and Redis."""
    with gateway_process() as base_url:
        yield base_url


def status_of(base_url: str, key: str) -> int:
    return httpx.post(base_url + "/v1/messages", json=HELLO, headers={"x-api-key": key}).status_code


def test_a_revoked_key_stops_working_in_another_process_within_a_second(gateway, other_process):
    assert status_of(other_process, gateway.key) == 200  # the key is now cached over there
    api_key_revoke(user=gateway.user, key_id=ApiKey.objects.get().pk)
    wait_until(lambda: status_of(other_process, gateway.key) == 401, timeout=1.0)


def test_a_disabled_account_is_refused_in_another_process(gateway, other_process):
    assert status_of(other_process, gateway.key) == 200
    gateway.user.is_active = False
    gateway.user.save()
    wait_until(lambda: status_of(other_process, gateway.key) == 403, timeout=1.0)


def test_a_route_change_reaches_another_process(gateway, other_process):
    from gateway.models import Upstream

    assert status_of(other_process, gateway.key) == 200
    for upstream in Upstream.objects.all():
        upstream.enabled = False
        upstream.save()
    wait_until(lambda: status_of(other_process, gateway.key) == 503, timeout=1.0)
