"""Rotating API_KEY_HASH_SECRET: keys stored under an old secret keep working and are re-hashed."""

from __future__ import annotations

import httpx
import pytest

from keys import keyformat
from keys.models import ApiKey
from keys.services import api_key_authenticate, api_key_create

HELLO = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "Hello"}]}


def rotate(settings, new_secret: str) -> str:
    """What the operator does: the current secret moves to the old list, a new one takes its place."""
    old_secret = settings.API_KEY_HASH_SECRET
    settings.API_KEY_HASH_SECRETS_OLD = [old_secret, *settings.API_KEY_HASH_SECRETS_OLD]
    settings.API_KEY_HASH_SECRET = new_secret
    return old_secret


@pytest.mark.django_db
def test_a_key_found_under_an_old_secret_is_rehashed(alice, settings):
    created = api_key_create(user=alice, name="before the rotation")
    rotate(settings, "the new secret")

    principal = api_key_authenticate(key=created.secret)

    assert principal is not None
    assert principal.key_id == created.api_key.pk
    assert ApiKey.objects.get().hashed_key == keyformat.hash_key(created.secret)  # under the new secret
    settings.API_KEY_HASH_SECRETS_OLD = []  # once every key was used, the old secret can go
    assert api_key_authenticate(key=created.secret) is not None


@pytest.mark.django_db
def test_without_the_old_secret_a_key_is_unknown(alice, settings):
    created = api_key_create(user=alice, name="before the rotation")
    settings.API_KEY_HASH_SECRET = "a secret nobody moved to the old list"
    assert api_key_authenticate(key=created.secret) is None


def test_the_live_gateway_serves_a_key_across_a_rotation(gateway, settings):
    old_secret = rotate(settings, "the new secret")
    answer = httpx.post(gateway.base_url + "/v1/messages", json=HELLO, headers={"x-api-key": gateway.key}, timeout=30)
    assert answer.status_code == 200
    stored = ApiKey.objects.get(user=gateway.user)
    assert stored.hashed_key == keyformat.hash_key(gateway.key)
    assert stored.hashed_key != keyformat._keyed_hash(old_secret, gateway.key)
