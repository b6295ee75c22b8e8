"""Fixtures of the dashboard tests: verified users, logged-in clients that enforce CSRF, a fresh cache."""

from __future__ import annotations

import uuid

import pytest
from allauth.account.models import EmailAddress
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import User


@pytest.fixture(autouse=True)
def private_cache(settings) -> None:
    """allauth counts logins, signups and mails in the cache: give each test its own, so that no
    test (nor a concurrent run sharing Redis) meets another's rate limits."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}
    }


def verify_email(user: User) -> User:
    EmailAddress.objects.update_or_create(user=user, email=user.email, defaults={"verified": True, "primary": True})
    return user


def csrf_token(client: Client) -> str:
    """The token a browser would send: rendering any page with a form sets the cookie."""
    if "csrftoken" not in client.cookies:
        client.get(reverse("account_reset_password"))
    return client.cookies["csrftoken"].value


def logged_in_client(user: User) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def logged_in_api_client(user: User) -> APIClient:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def post_form(client: Client, url: str, data: dict[str, str] | None = None, **extra: object):
    """A POST as a browser sends it: the form's fields plus the CSRF token."""
    return client.post(url, {**(data or {}), "csrfmiddlewaretoken": csrf_token(client)}, **extra)


@pytest.fixture
def alice_client(alice) -> Client:
    return logged_in_client(verify_email(alice))


@pytest.fixture
def bob_client(bob) -> Client:
    return logged_in_client(verify_email(bob))


@pytest.fixture
def alice_api(alice) -> APIClient:
    client = logged_in_api_client(verify_email(alice))
    client.credentials(HTTP_X_CSRFTOKEN=csrf_token(client))
    return client


@pytest.fixture
def bob_api(bob) -> APIClient:
    client = logged_in_api_client(verify_email(bob))
    client.credentials(HTTP_X_CSRFTOKEN=csrf_token(client))
    return client
