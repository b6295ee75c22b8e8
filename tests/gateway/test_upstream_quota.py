"""The backend's own rate limits, per credential, as its `anthropic-ratelimit-*` headers report them.

The simulator reports the quota it is told for a credential; two credentials of one backend, and
requests of several sessions, so that both would be used (gateway/routing.py ranks them per session).
"""

from __future__ import annotations

import time

import pytest

from gateway.services import upstream_add
from tests.helpers import wait_until

HELLO = [{"role": "user", "content": "Hello"}]
PRIMARY, SECOND = "sk-ant-sim-primary", "sk-ant-sim-second"


@pytest.fixture
def two_credentials(unlimited):
    gateway = unlimited
    upstream_add(name="sim", base_url=gateway.simulator.base_url, credentials=[SECOND])
    return gateway


def ask(gateway, session: str) -> str:
    """One request of `session`; returns the credential that served it."""
    gateway.client().messages.create(
        model="claude-sonnet-4-6", max_tokens=10, messages=HELLO, extra_headers={"x-claude-code-session-id": session}
    )
    return gateway.simulator.requests()[-1]["headers"]["x-api-key"]


def sessions_served_first_by(gateway, credential: str) -> list[str]:
    """Sessions whose own order starts at `credential` (found by asking, before any quota is set)."""
    found = [session for session in (f"s-{number}" for number in range(12)) if ask(gateway, session) == credential]
    gateway.simulator.clear()
    assert found, "no session starts at this credential"
    return found


def test_a_credential_with_no_requests_left_rests_until_its_reset(two_credentials):
    gateway = two_credentials
    primary_first = sessions_served_first_by(gateway, PRIMARY)
    gateway.simulator.set_quota(PRIMARY, remaining=0, reset_seconds=3)
    assert ask(gateway, primary_first[0]) == PRIMARY  # served; its answer says nothing is left
    reset_at = time.time() + 2  # the reset is given to the second: at least 2 s away
    served = [ask(gateway, session) for session in primary_first * 3]
    if time.time() < reset_at:  # everything above was asked before the reset
        assert served == [SECOND] * len(served)
    gateway.simulator.set_quota(PRIMARY, remaining=3999, reset_seconds=60)
    wait_until(lambda: ask(gateway, primary_first[0]) == PRIMARY, timeout=10, interval=0.2)  # back after the reset
    assert time.time() >= reset_at - 1


def test_a_credential_near_its_limit_goes_after_those_with_headroom(two_credentials, anthropic_errors):
    gateway = two_credentials
    primary_first = sessions_served_first_by(gateway, PRIMARY)
    gateway.simulator.set_quota(PRIMARY, remaining=10, reset_seconds=60)  # 10 of 4,000 left
    assert ask(gateway, primary_first[0]) == PRIMARY
    assert {ask(gateway, session) for session in primary_first} == {SECOND}
    # Not resting: when the others cannot serve, it still does.
    gateway.simulator.fail_next(529, retry_after=30)
    assert ask(gateway, primary_first[0]) == PRIMARY


def admin_page_of(admin_client, name: str) -> str:
    from gateway.models import Upstream

    upstream = Upstream.objects.get(name=name)
    page = admin_client.get(f"/admin/gateway/upstream/{upstream.pk}/change/")
    assert page.status_code == 200
    return page.content.decode()


def test_the_admin_shows_resting_refused_and_recovered_credentials(two_credentials, admin_client, settings):
    """What the gateway's processes learnt reaches the admin: why each credential rests, until when,
    and that it answered again once it was probed."""
    from gateway.credential_health import reports
    from gateway.routing import health

    gateway = two_credentials
    reports.clear()
    primary_first = sessions_served_first_by(gateway, PRIMARY)
    second_first = sessions_served_first_by(gateway, SECOND)
    gateway.simulator.fail_next(429, retry_after=30)
    assert ask(gateway, primary_first[0]) == SECOND  # the primary got the 429 and rests
    wait_until(lambda: "the backend answered 429, until" in admin_page_of(admin_client, "sim"))

    settings.GATEWAY_CREDENTIAL_REFUSED_COOLDOWN_SECONDS = 1
    gateway.simulator.set_bad_credentials([SECOND])
    health.reset()
    assert ask(gateway, second_first[0]) == PRIMARY  # the second was refused: the primary served
    wait_until(lambda: "the backend refused it (401)" in admin_page_of(admin_client, "sim"))

    gateway.simulator.set_bad_credentials([])  # after its second of rest, a request probes it again
    wait_until(lambda: ask(gateway, second_first[0]) == SECOND, interval=0.2)
    wait_until(lambda: admin_page_of(admin_client, "sim").count("in service: answered again") >= 1)
