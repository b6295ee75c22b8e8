"""Every refusal of the gateway surfaces as the SDK's matching exception, in Anthropic's shape."""

from __future__ import annotations

import httpx
import pytest

from accounts.models import User
from keys.models import ApiKey
from keys.services import api_key_revoke

HELLO = [{"role": "user", "content": "Hello"}]


def create(client, **overrides):
    arguments = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": HELLO, **overrides}
    return client.messages.create(**arguments)


def post(gateway, body: bytes | dict, **headers: str) -> httpx.Response:
    headers = {"x-api-key": gateway.key, "content-type": "application/json", **headers}
    if isinstance(body, dict):
        return httpx.post(gateway.base_url + "/v1/messages", json=body, headers=headers)
    return httpx.post(gateway.base_url + "/v1/messages", content=body, headers=headers)


def assert_anthropic_error(response: httpx.Response, status: int, error_type: str) -> dict:
    assert response.status_code == status
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert body["request_id"] == response.headers["request-id"]
    return body


@pytest.mark.parametrize(
    "key",
    [
        "sk-ant-api03-not-ours",
        "sk-llmapi-short",
        "sk-llmapi-" + "A" * 46,  # right length, wrong checksum
    ],
)
def test_malformed_keys_are_refused(gateway, anthropic_errors, key):
    with pytest.raises(anthropic_errors.AuthenticationError, match="invalid x-api-key"):
        create(gateway.client(api_key=key))
    assert gateway.simulator.requests() == []


def test_unknown_well_formed_key_is_refused(gateway, anthropic_errors):
    from keys.keyformat import generate_key

    with pytest.raises(anthropic_errors.AuthenticationError):
        create(gateway.client(api_key=generate_key()))


def test_missing_key(gateway):
    response = httpx.post(gateway.base_url + "/v1/messages", json={})
    body = assert_anthropic_error(response, 401, "authentication_error")
    assert body["error"]["message"] == "x-api-key header is required"


def test_revoked_key_stops_working_at_once(gateway, anthropic_errors):
    client = gateway.client()
    create(client)  # now cached by the gateway
    api_key_revoke(user=gateway.user, key_id=ApiKey.objects.get().pk)
    with pytest.raises(anthropic_errors.AuthenticationError):
        create(client)


def test_disabled_account_is_forbidden(gateway, anthropic_errors):
    client = gateway.client()
    create(client)
    User.objects.filter(pk=gateway.user.pk).update(is_active=False)
    gateway.user.refresh_from_db()
    gateway.user.save()  # a save (as the admin does) tells every gateway process
    with pytest.raises(anthropic_errors.PermissionDeniedError):
        create(client)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "The request body is not valid JSON."),
        (b"[1, 2]", "The request body must be a JSON object."),
        # Parts the gateway skips unparsed must still be valid JSON and UTF-8, and not nested past parsing.
        (
            b'{"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            "The request body is not valid JSON.",
        ),
        (
            b'{"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": [{"role": "user",]}',
            "The request body is not valid JSON.",
        ),
        (
            b'{"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": [], "system": "\xff"}',
            "The request body is not valid JSON.",
        ),
        (
            b'{"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": []} trailing',
            "The request body is not valid JSON.",
        ),
        (
            b'{"model": "claude-sonnet-4-6", "messages": "[]", "max_tokens": 5}',
            "messages: Input should be a valid list",
        ),
        (b'{"messages": [], "max_tokens": 5}', "model: Field required"),
        (b'{"model": 5, "messages": [], "max_tokens": 5}', "model: Input should be a valid string"),
        (b'{"model": "claude-sonnet-4-6", "max_tokens": 5}', "messages: Field required"),
        (
            b'{"model": "claude-sonnet-4-6", "messages": {}, "max_tokens": 5}',
            "messages: Input should be a valid list",
        ),
        (b'{"model": "claude-sonnet-4-6", "messages": []}', "max_tokens: Field required"),
        (
            b'{"model": "claude-sonnet-4-6", "messages": [], "max_tokens": "5"}',
            "max_tokens: Input should be a valid integer",
        ),
        (
            b'{"model": "claude-sonnet-4-6", "messages": [], "max_tokens": true}',
            "max_tokens: Input should be a valid integer",
        ),
    ],
)
def test_invalid_bodies_name_the_field(gateway, body, message):
    response = post(gateway, body)
    assert assert_anthropic_error(response, 400, "invalid_request_error")["error"]["message"] == message
    assert gateway.simulator.requests() == []


def test_invalid_body_through_the_sdk(gateway, anthropic_errors):
    with pytest.raises(anthropic_errors.BadRequestError, match="max_tokens"):
        create(gateway.client(), extra_body={"max_tokens": "many"})


def test_unknown_model_is_not_found(gateway, anthropic_errors):
    with pytest.raises(anthropic_errors.NotFoundError, match="model: gpt-4o"):
        create(gateway.client(), model="gpt-4o")


def test_unknown_paths_are_not_found(gateway, anthropic_errors):
    for method, path in (("POST", "/v1/messages/batches"), ("GET", "/v1/files"), ("POST", "/v1/complete")):
        response = httpx.request(method, gateway.base_url + path, headers={"x-api-key": gateway.key})
        assert_anthropic_error(response, 404, "not_found_error")


def test_body_over_32_mb_is_refused_while_reading(gateway, anthropic_errors):
    huge = "x" * (32 * 1024 * 1024)
    with pytest.raises(anthropic_errors.ContentTooLargeError):
        create(gateway.client(), messages=[{"role": "user", "content": huge}])
    assert gateway.simulator.requests() == []


def test_body_over_32_mb_without_content_length(gateway):
    def chunks():
        for _ in range(40):
            yield b"x" * (1024 * 1024)

    try:
        response = httpx.post(gateway.base_url + "/v1/messages", content=chunks(), headers={"x-api-key": gateway.key})
    except httpx.WriteError:
        return  # the gateway answered and closed before we finished sending: refused while reading
    assert_anthropic_error(response, 413, "request_too_large")


def test_model_routed_nowhere_is_unavailable(gateway, anthropic_errors):
    from gateway.models import Upstream

    Upstream.objects.update(enabled=False)
    with pytest.raises(anthropic_errors.ServiceUnavailableError):
        create(gateway.client())
