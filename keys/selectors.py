"""Reads of API keys, including the one the gateway makes on a cache miss."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from accounts.models import User
from keys.models import ApiKey
from plans.selectors import plan_for_user


@dataclass(frozen=True, slots=True)
class KeyPrincipal:
    """Everything the gateway needs to know about a key, cached in each process."""

    key_id: int
    user_id: int
    user_is_active: bool
    plan_slug: str
    plan_name: str
    requests_per_minute: int
    requests_per_5_hours: int
    requests_per_week: int
    # The account ceiling is max_keys times each limit (gateway/limits.py).
    max_keys: int = 1
    concurrent_requests_per_key: int = 4
    input_tokens_per_minute: int | None = None  # None: no token limit
    output_tokens_per_minute: int | None = None
    key_prefix: str = ""  # the key's first characters, as the dashboard shows them (logs name the key so)


def api_key_list(*, user: User) -> QuerySet[ApiKey]:
    return ApiKey.objects.active().filter(user=user)


def api_key_list_including_revoked(*, user: User) -> QuerySet[ApiKey]:
    """Every key the user ever had: usage history still names the deleted ones."""
    return ApiKey.objects.filter(user=user)


def api_key_get(*, user: User, key_id: int) -> ApiKey:
    """One of the user's active keys; raises ApiKey.DoesNotExist for anyone else's, so callers answer 404."""
    return api_key_list(user=user).get(pk=key_id)


def api_key_principal(*, hashed_key: str) -> KeyPrincipal | None:
    api_key = api_key_find_by_hash(hashed_keys=[hashed_key])
    return None if api_key is None else principal_of(api_key)


def api_key_find_by_hash(*, hashed_keys: list[str]) -> ApiKey | None:
    """The active key stored under any of these hashes (one indexed query), with its user and plan."""
    return ApiKey.objects.active().select_related("user", "user__plan").filter(hashed_key__in=hashed_keys).first()


def principal_of(api_key: ApiKey) -> KeyPrincipal:
    plan = plan_for_user(user=api_key.user)
    return KeyPrincipal(
        key_id=api_key.pk,
        user_id=api_key.user_id,
        user_is_active=api_key.user.is_active,
        plan_slug=plan.slug,
        plan_name=plan.name,
        requests_per_minute=plan.requests_per_minute,
        requests_per_5_hours=plan.requests_per_5_hours,
        requests_per_week=plan.requests_per_week,
        max_keys=plan.max_keys,
        concurrent_requests_per_key=plan.concurrent_requests_per_key,
        input_tokens_per_minute=plan.input_tokens_per_minute,
        output_tokens_per_minute=plan.output_tokens_per_minute,
        key_prefix=api_key.prefix,
    )
