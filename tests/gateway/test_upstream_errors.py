"""Backend errors as the client sees them, and what they do to our credentials.

A 403 is the client's (a model or beta the organisation lacks) and leaves the credential alone;
a 401 is ours: the credential rests and is probed again, and only repeated refusals on distinct
requests disable it. When no backend could answer, the last one's error is the answer, exactly
as Anthropic sent it, with our request id.
"""

from __future__ import annotations

import logging

import httpx
import pytest

from accounts.models import User
from gateway.models import UpstreamCredential
from gateway.routing import health
from gateway.services import upstream_add
from keys.services import api_key_create
from plans.models import Plan
from tests.gateway.backends import sessions_starting_at

HELLO = [{"role": "user", "content": "Hello"}]
ANSWER = "Hello from the simulator."


def create(client, session: str | None = None):
    headers = {"x-claude-code-session-id": session} if session else {}
    return client.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=HELLO, extra_headers=headers)


def credentials_used(gateway) -> list[str]:
    return [request["headers"]["x-api-key"] for request in gateway.simulator.requests()]


def credential(secret: str) -> UpstreamCredential:
    return next(row for row in UpstreamCredential.objects.all() if row.secret == secret)


def add_second_credential(gateway) -> None:
    upstream_add(name="sim", base_url=gateway.simulator.base_url, credentials=["sk-ant-sim-second"])


def assert_our_request_id(error) -> None:
    assert error.body["request_id"] == error.response.headers["request-id"]
    assert error.body["request_id"].startswith("req_")
    assert not error.body["request_id"].startswith("req_sim_")  # the simulator's own id is replaced


def test_a_403_reaches_the_client_and_leaves_the_credential_alone(gateway, anthropic_errors):
    gateway.simulator.fail_next(403)
    with pytest.raises(anthropic_errors.PermissionDeniedError) as caught:
        create(gateway.client())
    assert caught.value.status_code == 403
    assert caught.value.body["error"]["type"] == "permission_error"
    assert_our_request_id(caught.value)

    other = User.objects.create_user("bob@example.com", "correct horse battery", plan=Plan.objects.get(slug="pro"))
    other_key = api_key_create(user=other, name="bob").secret
    assert create(gateway.client(api_key=other_key)).content[0].text == ANSWER
    assert credentials_used(gateway) == ["sk-ant-sim-primary", "sk-ant-sim-primary"]
    assert credential("sk-ant-sim-primary").enabled


def test_a_401_rests_the_credential_without_disabling_it(gateway):
    add_second_credential(gateway)
    gateway.simulator.set_bad_credentials(["sk-ant-sim-primary"])
    for session in sessions_starting_at("sk-ant-sim-primary"):
        assert create(gateway.client(), session).content[0].text == ANSWER
    assert credentials_used(gateway).count("sk-ant-sim-primary") == 1  # refused once, then resting
    refused = credential("sk-ant-sim-primary")
    assert refused.enabled
    assert refused.disabled_at is None


def test_a_rested_credential_is_probed_again_and_kept_when_it_works(gateway, settings):
    settings.GATEWAY_CREDENTIAL_REFUSED_COOLDOWN_SECONDS = 0
    add_second_credential(gateway)
    sessions = sessions_starting_at("sk-ant-sim-primary", 3)
    gateway.simulator.set_bad_credentials(["sk-ant-sim-primary"])
    create(gateway.client(), sessions[0])
    gateway.simulator.set_bad_credentials([])  # the provider's fault has passed
    for session in sessions[1:]:
        create(gateway.client(), session)
    assert credentials_used(gateway).count("sk-ant-sim-primary") >= 2  # probed again after its rest
    assert credential("sk-ant-sim-primary").enabled


def test_repeated_401s_on_distinct_requests_disable_the_credential(gateway, settings, caplog):
    settings.GATEWAY_CREDENTIAL_REFUSED_COOLDOWN_SECONDS = 0  # every request probes it again
    settings.GATEWAY_CREDENTIAL_REFUSALS_TO_DISABLE = 2
    add_second_credential(gateway)
    gateway.simulator.set_bad_credentials(["sk-ant-sim-primary"])
    with caplog.at_level(logging.ERROR, logger="gateway.relay"):
        for session in sessions_starting_at("sk-ant-sim-primary"):
            assert create(gateway.client(), session).content[0].text == ANSWER
    assert credentials_used(gateway).count("sk-ant-sim-primary") == 2
    refused = credential("sk-ant-sim-primary")
    assert not refused.enabled
    assert "401" in refused.disabled_reason
    assert refused.disabled_at is not None
    assert any("disabled" in record.getMessage() for record in caplog.records if record.levelno == logging.ERROR)
    assert "sk-ant-sim-primary" not in caplog.text


def test_one_request_never_disables_more_than_one_credential(gateway, settings, anthropic_errors):
    settings.GATEWAY_CREDENTIAL_REFUSALS_TO_DISABLE = 1
    add_second_credential(gateway)
    gateway.simulator.set_bad_credentials(["sk-ant-sim-primary", "sk-ant-sim-second"])
    with pytest.raises(anthropic_errors.APIStatusError) as caught:
        create(gateway.client())
    assert caught.value.status_code == 503  # our credentials' trouble is never shown as the client's 401
    assert sorted(credentials_used(gateway)) == ["sk-ant-sim-primary", "sk-ant-sim-second"]
    assert UpstreamCredential.objects.filter(enabled=False).count() == 1


@pytest.mark.parametrize(
    ("statuses", "error_class", "error_type"),
    [
        ([500], "InternalServerError", "api_error"),
        ([529, 500], "InternalServerError", "api_error"),
        ([500, 529], "OverloadedError", "overloaded_error"),
        ([503], "ServiceUnavailableError", "overloaded_error"),
    ],
)
def test_when_every_backend_failed_the_last_ones_error_is_the_answer(
    gateway, anthropic_errors, statuses, error_class, error_type
):
    upstream_add(name="sim-backup", base_url=gateway.simulator.base_url, credentials=["sk-ant-sim-backup"])
    for status in statuses:
        gateway.simulator.fail_next(status)
    gateway.simulator.fail_next(statuses[-1], count=5)  # whatever else is tried answers the same
    with pytest.raises(getattr(anthropic_errors, error_class)) as caught:
        create(gateway.client())
    assert caught.value.status_code == statuses[-1]
    assert caught.value.body["error"]["type"] == error_type
    assert_our_request_id(caught.value)
    health.reset()


def test_a_relayed_client_error_carries_our_request_id_and_its_message(gateway, anthropic_errors):
    with pytest.raises(anthropic_errors.BadRequestError) as caught:
        gateway.client().messages.create(
            model="claude-sonnet-4-6", max_tokens=10, messages=[{"role": "user", "content": "scenario:bad_request"}]
        )
    assert caught.value.body["error"]["message"] == "prompt is too long: 300000 tokens > 200000 maximum"
    assert_our_request_id(caught.value)


def test_a_non_json_backend_error_is_wrapped_and_costs_no_quota(gateway, anthropic_errors):
    gateway.user.plan = Plan.objects.get(slug="free")
    gateway.user.save()
    client = gateway.client()
    before = client.messages.with_raw_response.create(model="claude-sonnet-4-6", max_tokens=10, messages=HELLO)
    remaining = int(before.headers["anthropic-ratelimit-requests-remaining"])

    gateway.simulator.fail_next(400, body="Bad request: header block malformed", content_type="text/plain")
    with pytest.raises(anthropic_errors.BadRequestError) as caught:
        create(client)
    assert caught.value.response.headers["content-type"] == "application/json"
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"] == {
        "type": "invalid_request_error",
        "message": "Bad request: header block malformed",
    }
    assert_our_request_id(caught.value)

    after = client.messages.with_raw_response.create(model="claude-sonnet-4-6", max_tokens=10, messages=HELLO)
    assert int(after.headers["anthropic-ratelimit-requests-remaining"]) == remaining - 1


def test_a_wrong_method_is_an_invalid_request(gateway, anthropic_errors):
    with pytest.raises(anthropic_errors.APIStatusError) as caught:
        gateway.client().get("/v1/messages", cast_to=httpx.Response)
    assert caught.value.status_code == 405
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert caught.value.response.headers["allow"] == "POST"
    assert_our_request_id(caught.value)
