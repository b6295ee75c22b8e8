"""The admin site, opened only to staff who logged in through allauth (rate-limited) with a second factor.

Django's own admin login form checks passwords without any throttling, so it is never shown: its URL
sends the visitor to allauth's login (failed logins limited per client and per account) and back.
"""

from __future__ import annotations

from typing import Any

from allauth.account.authentication import get_authentication_records
from allauth.mfa.utils import is_mfa_enabled
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode


def session_used_second_factor(request: HttpRequest) -> bool:
    # allauth records each authentication step of this session; an "mfa" one is a TOTP or recovery code.
    return any(record.get("method") == "mfa" for record in get_authentication_records(request, request.user))


def url_with_next(view_name: str, next_url: str) -> str:
    return f"{reverse(view_name)}?{urlencode({'next': next_url})}"


class StaffAdminSite(admin.AdminSite):
    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return user.is_active and user.is_staff and is_mfa_enabled(user) and session_used_second_factor(request)

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponseRedirect:
        """Where the admin sends whoever it refuses: to the step that is missing, then back."""
        next_url = self.safe_next_url(request)
        user = request.user
        if not user.is_authenticated:
            return HttpResponseRedirect(url_with_next("account_login", next_url))
        if not (user.is_active and user.is_staff):
            raise PermissionDenied("The admin is for staff only.")
        if not is_mfa_enabled(user):
            messages.info(
                request, "Staff need two-factor authentication: set up an authenticator app to use the admin."
            )
            return HttpResponseRedirect(reverse("mfa_activate_totp"))
        if not session_used_second_factor(request):
            return HttpResponseRedirect(url_with_next("mfa_reauthenticate", next_url))
        return HttpResponseRedirect(next_url)

    def safe_next_url(self, request: HttpRequest) -> str:
        next_url = request.GET.get("next", "")
        if next_url and url_has_allowed_host_and_scheme(
            next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return next_url
        return reverse("admin:index", current_app=self.name)
