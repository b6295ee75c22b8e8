"""Reads about an account that pages and the API share."""

from __future__ import annotations

from allauth.account.models import EmailAddress

from accounts.models import User


def user_has_verified_email(*, user: User) -> bool:
    """Whether the account proved it owns an address (while an email change is pending, the old one counts)."""
    return EmailAddress.objects.filter(user_id=user.pk, verified=True).exists()
