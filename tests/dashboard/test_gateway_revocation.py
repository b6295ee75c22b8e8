"""A key deleted in the dashboard or through /api stops working at the live gateway at once."""

from __future__ import annotations

import httpx
import pytest
from django.urls import reverse

from keys.models import ApiKey
from tests.dashboard.conftest import csrf_token, logged_in_api_client, logged_in_client, post_form, verify_email

MESSAGE = {"model": "claude-sonnet-4-6", "max_tokens": 16, "messages": [{"role": "user", "content": "Hello"}]}


def call_gateway(base_url: str, key: str) -> httpx.Response:
    return httpx.post(f"{base_url}/v1/messages", headers={"x-api-key": key}, json=MESSAGE, timeout=30)


def test_a_key_deleted_on_the_key_page_is_refused_with_401(gateway, anthropic_errors):
    sdk = gateway.client()
    assert sdk.messages.create(**MESSAGE).content  # works, and is now cached by the gateway

    client = logged_in_client(verify_email(gateway.user))
    api_key = ApiKey.objects.get(user=gateway.user)
    response = post_form(client, reverse("keys:delete", args=[api_key.pk]))
    assert response.status_code == 302

    with pytest.raises(anthropic_errors.AuthenticationError) as refused:
        sdk.messages.create(**MESSAGE)
    assert refused.value.status_code == 401
    assert refused.value.body["error"]["type"] == "authentication_error"


def test_a_key_made_and_deleted_through_the_api(gateway):
    client = logged_in_api_client(verify_email(gateway.user))
    client.credentials(HTTP_X_CSRFTOKEN=csrf_token(client))
    created = client.post("/api/keys/", {"name": "ci"}, format="json").json()

    answer = call_gateway(gateway.base_url, created["key"])
    assert answer.status_code == 200
    assert answer.headers["anthropic-ratelimit-requests-remaining"] == "119"  # Max 20x: 120 a minute

    assert client.delete(f"/api/keys/{created['id']}/").status_code == 204
    refused = call_gateway(gateway.base_url, created["key"])
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "authentication_error"


def test_the_windows_count_the_gateways_requests(gateway):
    call_gateway(gateway.base_url, gateway.key)
    client = logged_in_api_client(gateway.user)
    api_key = ApiKey.objects.get(user=gateway.user)
    windows = client.get(f"/api/keys/{api_key.pk}/windows/").json()
    assert [(window["name"], window["used"]) for window in windows][:3] == [("minute", 1), ("5h", 1), ("week", 1)]
    assert [window["name"] for window in windows][3:] == ["input-tokens", "output-tokens"]
