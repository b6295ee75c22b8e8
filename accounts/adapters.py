"""How allauth fits our user model and deployment: addresses in one case, client addresses from TRUSTED_PROXIES."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from accounts.models import User
from llmapi.client_ip import client_ip


class AccountAdapter(DefaultAccountAdapter):
    def clean_email(self, email: str) -> str:
        # The unique constraint is on lower(email); signing up as Bob@x.com must meet bob@x.com's account.
        return User.objects.normalize_email(super().clean_email(email))

    def get_client_ip(self, request: HttpRequest) -> str:
        # allauth's per-client rate limits (failed logins, signups, reset mails) count by this address.
        address = client_ip(
            peer=request.META.get("REMOTE_ADDR"),
            forwarded_for=request.headers.get("X-Forwarded-For"),
            trusted_proxies=settings.TRUSTED_PROXIES,
        )
        if address is None:
            raise PermissionDenied("The client's address is unknown.")
        return address
