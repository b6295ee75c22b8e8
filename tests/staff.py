"""Logging staff in as the admin requires: allauth's login, then a code from an authenticator app."""

from __future__ import annotations

import time

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.test import Client
from django.urls import reverse

from accounts.models import User

TOTP_PERIOD_SECONDS = 30


def totp_code(secret: str) -> str:
    """What an authenticator app shows now for this secret."""
    return format_hotp_value(hotp_value(secret, int(time.time()) // TOTP_PERIOD_SECONDS))


def enable_totp(user: User) -> str:
    """Turn on an authenticator app for the user, as the setup page would; returns its secret."""
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    return secret


def unused_recovery_codes(user: User) -> list[str]:
    return Authenticator.objects.get(user=user, type=Authenticator.Type.RECOVERY_CODES).wrap().get_unused_codes()


def log_in_with_second_factor(client: Client, *, user: User, password: str, secret: str) -> None:
    """The whole login of a user with an authenticator app: password, then code."""
    EmailAddress.objects.update_or_create(user=user, email=user.email, defaults={"verified": True, "primary": True})
    response = client.post(reverse("account_login"), {"login": user.email, "password": password})
    assert response.status_code == 302, response.content.decode()
    assert response["Location"] == reverse("mfa_authenticate")
    response = client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    assert response.status_code == 302, response.content.decode()
