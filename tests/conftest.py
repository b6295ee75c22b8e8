"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest

from accounts.models import User


@pytest.fixture
def alice(db) -> User:
    return User.objects.create_user("alice@example.com", "correct horse battery")


@pytest.fixture
def bob(db) -> User:
    return User.objects.create_user("bob@example.com", "correct horse battery")
