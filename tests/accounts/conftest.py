"""Fixtures of the account tests: a cache of each test's own (allauth counts logins in it), fast password hashes."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture(autouse=True)
def private_cache(settings) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}
    }


@pytest.fixture(autouse=True)
def fast_password_hashes(settings) -> None:
    """Lockout tests make dozens of logins: a real hash costs about a second each on a busy machine."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
