"""Failover before the first byte: other credentials and backends, cooldowns, circuits."""

from __future__ import annotations

import pytest

from gateway.routing import health
from gateway.services import upstream_add
from tests.helpers import free_port

HELLO = [{"role": "user", "content": "Hello"}]


def create(gateway):
    return gateway.client().messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=HELLO)


def credentials_used(gateway) -> list[str]:
    return [request["headers"]["x-api-key"] for request in gateway.simulator.requests()]


def add_backup_upstream(gateway) -> None:
    upstream_add(name="sim-backup", base_url=gateway.simulator.base_url, credentials=["sk-ant-sim-backup"])


@pytest.mark.parametrize("status", [529, 500, 503, 429, 0])
def test_failover_to_the_next_backend_gives_one_clean_reply(gateway, status):
    add_backup_upstream(gateway)
    gateway.simulator.fail_next(status)  # 0: the connection drops without an answer
    message = create(gateway)
    assert message.content[0].text == "Hello from the simulator."
    assert credentials_used(gateway) == ["sk-ant-sim-primary", "sk-ant-sim-backup"]


def test_a_credential_that_got_429_rests_for_its_retry_after(gateway):
    upstream_add(name="sim", base_url=gateway.simulator.base_url, credentials=["sk-ant-sim-second"])
    gateway.simulator.fail_next(429, retry_after=30)
    for _ in range(4):
        create(gateway)
    used = credentials_used(gateway)
    rested = used[0]
    assert used.count(rested) == 1  # refused once, then left alone for 30 s
    assert len(used) == 5


def test_when_every_credential_rests_the_soonest_one_is_still_tried(gateway, anthropic_errors):
    gateway.simulator.fail_next(529, retry_after=60)
    with pytest.raises(anthropic_errors.OverloadedError) as caught:
        create(gateway)
    assert caught.value.response.headers["retry-after"] == "60"
    # The only credential rests for a minute, yet the next request is not refused untried.
    assert create(gateway).content[0].text == "Hello from the simulator."


def test_refused_credential_is_never_shown_as_the_users_error(gateway):
    upstream_add(name="sim", base_url=gateway.simulator.base_url, credentials=["sk-ant-sim-second"])
    gateway.simulator.set_bad_credentials(["sk-ant-sim-primary"])
    for _ in range(3):
        assert create(gateway).content[0].text == "Hello from the simulator."
    assert credentials_used(gateway).count("sk-ant-sim-primary") <= 1


def test_unreachable_backend_fails_over(gateway):
    upstream_add(name="dead", base_url=f"http://127.0.0.1:{free_port()}", credentials=["sk-ant-dead"])
    from gateway.models import RouteTarget

    RouteTarget.objects.filter(upstream__name="dead").update(position=0)
    RouteTarget.objects.filter(upstream__name="sim").update(position=1)
    assert create(gateway).content[0].text == "Hello from the simulator."


def test_repeated_failures_open_the_circuit(gateway, settings):
    add_backup_upstream(gateway)
    settings.GATEWAY_CIRCUIT_FAILURES = 2
    for _ in range(2):
        gateway.simulator.fail_next(500)
        create(gateway)  # primary fails, backup answers; the second time the circuit opens
    gateway.simulator.clear()
    create(gateway)
    assert credentials_used(gateway) == ["sk-ant-sim-backup"]
    health.reset()


def test_client_faults_never_cool_anything_down(gateway, anthropic_errors):
    add_backup_upstream(gateway)
    with pytest.raises(anthropic_errors.BadRequestError):
        gateway.client().messages.create(
            model="claude-sonnet-4-6",
            max_tokens=10,
            messages=[{"role": "user", "content": "scenario:bad_request"}],
        )
    create(gateway)
    assert credentials_used(gateway) == ["sk-ant-sim-primary", "sk-ant-sim-primary"]
