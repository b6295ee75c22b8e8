"""How allauth fits our user model: addresses are stored in one case, like every other path that creates users."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter

from accounts.models import User


class AccountAdapter(DefaultAccountAdapter):
    def clean_email(self, email: str) -> str:
        # The unique constraint is on lower(email); signing up as Bob@x.com must meet bob@x.com's account.
        return User.objects.normalize_email(super().clean_email(email))
