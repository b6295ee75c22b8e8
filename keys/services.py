"""Changes to API keys: create (the only time the full key exists), revoke, and re-hash after a secret rotation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.selectors import user_has_verified_email
from keys import keyformat
from keys.models import ApiKey
from keys.selectors import KeyPrincipal, api_key_find_by_hash, principal_of
from llmapi.invalidation import publish
from plans.selectors import plan_for_user


class ApiKeyLimitError(Exception):
    """The account already holds as many keys as its plan allows."""


class ApiKeyCreationThrottledError(ApiKeyLimitError):
    """The account created as many keys in the past hour as it may (KEY_CREATIONS_PER_HOUR)."""


class EmailNotVerifiedError(Exception):
    """A self-service key was asked for by an account that has not verified its email address."""

    def __init__(self) -> None:
        super().__init__("Verify your email address before creating an API key; we can send the link again.")


@dataclass(frozen=True)
class CreatedApiKey:
    api_key: ApiKey
    secret: str  # the full key: show it once, never store it


def api_key_create(*, user: User, name: str, require_verified_email: bool = False) -> CreatedApiKey:
    """A new key. The dashboard and the API pass `require_verified_email=True`, and such self-service
    creations are throttled (KEY_CREATIONS_PER_HOUR); operator commands create keys for accounts
    the operator vouches for, whose address nobody verified."""
    name = name.strip()
    if not name:
        raise ValueError("A key needs a name.")
    if require_verified_email and not user_has_verified_email(user=user):
        raise EmailNotVerifiedError
    with transaction.atomic():
        # Lock the user row so that two simultaneous creations cannot both pass the count below.
        User.objects.select_for_update().filter(pk=user.pk).first()
        plan = plan_for_user(user=user)
        if ApiKey.objects.active().filter(user=user).count() >= plan.max_keys:
            raise ApiKeyLimitError(
                f"Your {plan.name} plan allows {plan.max_keys} keys. Delete one or upgrade your plan."
            )
        if require_verified_email:
            _refuse_if_created_too_many(user=user)
        secret = keyformat.generate_key()
        prefix, last_four = keyformat.display_parts(secret)
        api_key = ApiKey.objects.create(
            user=user, name=name, hashed_key=keyformat.hash_key(secret), prefix=prefix, last_four=last_four
        )
    return CreatedApiKey(api_key=api_key, secret=secret)


def _refuse_if_created_too_many(*, user: User) -> None:
    """Keys are cheap to churn; limits hold per account anyway, but churn is refused here too.
    Revoked keys stay in the table, so they count."""
    hour_ago = timezone.now() - timedelta(hours=1)
    recent = ApiKey.objects.filter(user=user, created_at__gt=hour_ago).order_by("created_at")
    allowed = settings.KEY_CREATIONS_PER_HOUR
    created = list(recent.values_list("created_at", flat=True)[:allowed])
    if len(created) >= allowed:
        minutes = max(1, round((created[0] + timedelta(hours=1) - timezone.now()).total_seconds() / 60))
        raise ApiKeyCreationThrottledError(
            f"You have created {allowed} keys in the past hour, the most an account may. "
            f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
        )


def api_key_revoke(*, user: User, key_id: int) -> ApiKey:
    """Revoke one of the user's keys; raises ApiKey.DoesNotExist for anyone else's."""
    with transaction.atomic():
        api_key = ApiKey.objects.active().select_for_update().get(pk=key_id, user=user)
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        publish(f"key:{api_key.hashed_key}")
    return api_key


def api_key_authenticate(*, key: str) -> KeyPrincipal | None:
    """The principal of a well-formed key, or None if no active key matches.

    One query looks for the key under the current hash secret and every old one; a key found under
    an old secret is re-hashed to the current one, so that old secrets can be retired once every
    live key was used (docs/operations.md).
    """
    current = keyformat.hash_key(key)
    api_key = api_key_find_by_hash(hashed_keys=[current, *keyformat.old_hashes(key)])
    if api_key is None:
        return None
    if api_key.hashed_key != current:
        api_key_rehash(api_key=api_key, hashed_key=current)
    return principal_of(api_key)


def api_key_rehash(*, api_key: ApiKey, hashed_key: str) -> None:
    """Store the key under its hash with the current secret. No invalidation: every process caches
    principals under the current hash already, and the principal itself does not change."""
    ApiKey.objects.filter(pk=api_key.pk, hashed_key=api_key.hashed_key).update(hashed_key=hashed_key)
    api_key.hashed_key = hashed_key
