"""API keys: their format, the stored hash, the show-once rule and the plan's key allowance."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from django.core.management import CommandError, call_command

from accounts.models import User
from keys import keyformat
from keys.models import ApiKey
from keys.selectors import api_key_list, api_key_principal
from keys.services import ApiKeyLimitError, api_key_create, api_key_revoke
from plans.models import Plan

pytestmark = pytest.mark.django_db


def test_generated_keys_are_well_formed_and_distinct():
    keys = {keyformat.generate_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert key.startswith("sk-llmapi-")
        assert len(key) == keyformat.KEY_LENGTH
        assert keyformat.is_well_formed(key)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda key: key[:-1] + ("A" if key[-1] != "A" else "B"),  # checksum broken
        lambda key: key[:20] + ("x" if key[20] != "x" else "y") + key[21:],  # body changed
        lambda key: key.replace("sk-llmapi-", "sk-llmapx-"),
        lambda key: key + "A",
        lambda key: key[:-1],
        lambda key: key[:30] + "-" + key[31:],
    ],
)
def test_damaged_keys_are_not_well_formed(mutate):
    assert not keyformat.is_well_formed(mutate(keyformat.generate_key()))


def test_only_a_keyed_hash_and_display_parts_are_stored(alice, settings):
    created = api_key_create(user=alice, name="laptop")
    stored = ApiKey.objects.get()
    assert stored.hashed_key == keyformat.hash_key(created.secret)
    assert created.secret not in str(ApiKey.objects.values().get())
    assert stored.masked == f"{created.secret[:14]}…{created.secret[-4:]}"
    settings.API_KEY_HASH_SECRET = "another secret"
    assert keyformat.hash_key(created.secret) != stored.hashed_key


def test_principal_carries_the_plan_limits(alice):
    alice.plan = Plan.objects.get(slug="max-5x")
    alice.save()
    secret = api_key_create(user=alice, name="ci").secret
    principal = api_key_principal(hashed_key=keyformat.hash_key(secret))
    assert principal.user_id == alice.pk
    assert principal.plan_slug == "max-5x"
    assert (principal.requests_per_minute, principal.requests_per_5_hours, principal.requests_per_week) == (
        60,
        1_200,
        6_000,
    )


def test_an_account_without_a_plan_is_on_free(alice):
    secret = api_key_create(user=alice, name="ci").secret
    assert api_key_principal(hashed_key=keyformat.hash_key(secret)).plan_slug == "free"


def test_revoked_key_has_no_principal_and_leaves_the_list(alice):
    created = api_key_create(user=alice, name="old")
    api_key_revoke(user=alice, key_id=created.api_key.pk)
    assert api_key_principal(hashed_key=created.api_key.hashed_key) is None
    assert list(api_key_list(user=alice)) == []


def test_nobody_can_revoke_someone_elses_key(alice, bob):
    created = api_key_create(user=alice, name="mine")
    with pytest.raises(ApiKey.DoesNotExist):
        api_key_revoke(user=bob, key_id=created.api_key.pk)
    assert ApiKey.objects.get().is_active


def test_plan_key_allowance_is_enforced(alice):
    for number in range(2):  # Free allows two
        api_key_create(user=alice, name=f"key {number}")
    with pytest.raises(ApiKeyLimitError, match="Free plan allows 2 keys"):
        api_key_create(user=alice, name="one too many")
    api_key_revoke(user=alice, key_id=ApiKey.objects.first().pk)
    api_key_create(user=alice, name="fits again")


def test_a_key_needs_a_name(alice):
    with pytest.raises(ValueError, match="needs a name"):
        api_key_create(user=alice, name="   ")


def test_apikey_command_creates_the_user_and_prints_the_key_once(capsys):
    call_command("apikey", "create", "Carol@Example.com", "--name", "cli", "--plan", "pro")
    secret = capsys.readouterr().out.strip()
    assert keyformat.is_well_formed(secret)
    user = User.objects.get(email="carol@example.com")
    assert user.plan.slug == "pro"
    assert ApiKey.objects.get(user=user).hashed_key == keyformat.hash_key(secret)


def test_apikey_command_refuses_unknown_plans_and_bad_emails():
    with pytest.raises(CommandError, match="No plan 'gold'"):
        call_command("apikey", "create", "dave@example.com", "--plan", "gold")
    with pytest.raises(CommandError, match="Not an email address"):
        call_command("apikey", "create", "not-an-email")


def test_self_service_key_creation_is_throttled_per_account(alice, bob, settings):
    from keys.services import ApiKeyCreationThrottledError

    settings.KEY_CREATIONS_PER_HOUR = 3
    EmailAddress.objects.create(user=alice, email=alice.email, verified=True, primary=True)
    for turn in range(3):
        created = api_key_create(user=alice, name=f"churn {turn}", require_verified_email=True)
        api_key_revoke(user=alice, key_id=created.api_key.pk)  # revoked keys still count
    with pytest.raises(ApiKeyCreationThrottledError, match="created 3 keys in the past hour"):
        api_key_create(user=alice, name="one more", require_verified_email=True)
    api_key_create(user=alice, name="by the operator")  # operator commands are not throttled
    EmailAddress.objects.create(user=bob, email=bob.email, verified=True, primary=True)
    api_key_create(user=bob, name="bob's own", require_verified_email=True)  # per account
