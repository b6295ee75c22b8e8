"""The user model logs in by email and has no username."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.db import IntegrityError

from accounts.models import User

pytestmark = pytest.mark.django_db


def test_project_uses_the_email_user():
    assert get_user_model() is User
    assert User.USERNAME_FIELD == "email"
    assert not hasattr(User, "username")


def test_login_by_email_any_case():
    user = User.objects.create_user("Carol@Example.COM", "a long enough password")
    assert user.email == "carol@example.com"
    assert authenticate(username="carol@example.com", password="a long enough password") == user
    assert authenticate(username="CAROL@example.com", password="a long enough password") == user
    assert authenticate(username="carol@example.com", password="wrong") is None


def test_email_is_unique_whatever_the_case():
    User.objects.create_user("dave@example.com", "pw")
    with pytest.raises(IntegrityError):
        User.objects.create(email="DAVE@example.com")


def test_email_is_required():
    with pytest.raises(ValueError, match="email address is required"):
        User.objects.create_user("", "pw")


def test_create_superuser_is_staff_and_superuser():
    admin = User.objects.create_superuser("root@example.com", "pw")
    assert admin.is_staff
    assert admin.is_superuser


def test_disabled_user_cannot_log_in(alice):
    alice.is_active = False
    alice.save()
    assert authenticate(username="alice@example.com", password="correct horse battery") is None
