"""Admin and login hardening: one throttled login for everybody, lockouts per account and per client,
client addresses from TRUSTED_PROXIES only, and a second factor before the admin opens."""

from __future__ import annotations

import re
import time
from urllib.parse import urlencode

import pytest
from allauth.account.models import EmailAddress
from django.test import Client
from django.urls import reverse

from accounts.models import User
from tests.staff import enable_totp, log_in_with_second_factor, totp_code, unused_recovery_codes

pytestmark = pytest.mark.django_db

PASSWORD = "a long and unusual passphrase"
LOCKED = "Too many failed login attempts"
ACCOUNT_LOCKOUT_SECONDS = 5 * 60  # ACCOUNT_RATE_LIMITS["login_failed"]: 5 per 5 minutes per account


@pytest.fixture
def staff() -> User:
    user = User.objects.create_user("ops@example.com", PASSWORD, is_staff=True, is_superuser=True)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


def log_in(client: Client, email: str, password: str, **extra: str):
    return client.post(reverse("account_login"), {"login": email, "password": password}, **extra)


def confirm_password(client: Client, password: str) -> None:
    """allauth asks for the password again before a second factor is set up or changed."""
    response = client.post(reverse("account_reauthenticate"), {"password": password})
    assert response.status_code == 302, response.content.decode()


def rotating_address(attempt: int) -> str:
    return f"198.51.{attempt // 250}.{attempt % 250 + 1}"


def test_admin_login_is_allauths_login():
    client = Client()
    response = client.get("/admin/gateway/upstream/")
    assert response.status_code == 302
    admin_login = response["Location"]
    assert admin_login.startswith("/admin/login/")
    response = client.get(admin_login)
    assert response.status_code == 302
    assert response["Location"] == reverse("account_login") + "?" + urlencode({"next": "/admin/gateway/upstream/"})


def test_the_admins_own_login_form_checks_no_password(staff):
    client = Client()
    response = client.post("/admin/login/", {"username": staff.email, "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert "_auth_user_id" not in client.session


def test_a_next_url_elsewhere_is_not_followed():
    response = Client().get("/admin/login/", {"next": "https://evil.example/"})
    assert response["Location"] == reverse("account_login") + "?" + urlencode({"next": "/admin/"})


def test_thirty_wrong_passwords_from_rotating_clients_lock_the_account(staff, monkeypatch):
    client = Client()
    for attempt in range(30):
        log_in(client, staff.email, f"wrong {attempt}", REMOTE_ADDR=rotating_address(attempt))
    # The right password, from yet another client, is refused while the lockout lasts...
    response = log_in(client, staff.email, PASSWORD, REMOTE_ADDR="203.0.113.200")
    assert response.status_code == 200
    assert LOCKED in response.content.decode()
    # ...also when the address is spelled in another case...
    response = log_in(client, staff.email.upper(), PASSWORD, REMOTE_ADDR="203.0.113.201")
    assert LOCKED in response.content.decode()
    # ...and accepted once it has ended.
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + ACCOUNT_LOCKOUT_SECONDS + 1)
    response = log_in(client, staff.email, PASSWORD, REMOTE_ADDR="203.0.113.202")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(staff.pk)


def failed_logins_until_refused(client: Client, attempts: int, **extra: str) -> int | None:
    """Failed logins to as many different accounts; the attempt at which the client is refused, if any."""
    for attempt in range(attempts):
        response = log_in(
            client, f"nobody{attempt}@example.com", "wrong", HTTP_X_FORWARDED_FOR=rotating_address(attempt), **extra
        )
        if LOCKED in response.content.decode():
            return attempt
    return None


def test_a_client_cannot_rotate_past_the_lockout_with_x_forwarded_for(settings):
    settings.TRUSTED_PROXIES = []
    assert failed_logins_until_refused(Client(), 30) == 10  # "10/m/ip": the TCP peer is the client


def test_x_forwarded_for_from_a_peer_that_is_not_a_listed_proxy_is_ignored(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert failed_logins_until_refused(Client(), 30, REMOTE_ADDR="127.0.0.1") == 10


def test_a_listed_proxy_names_the_client(settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    assert failed_logins_until_refused(Client(), 30) is None  # thirty clients behind the proxy, one try each


def test_staff_without_a_second_factor_are_sent_to_set_one_up(staff):
    client = Client()
    assert log_in(client, staff.email, PASSWORD).status_code == 302
    response = client.get("/admin/", follow=True)
    # Setting up a second factor takes the password again (allauth), then shows the app's QR code.
    activate = reverse("mfa_activate_totp")
    assert [url for url, _ in response.redirect_chain][-2:] == [
        activate,
        reverse("account_reauthenticate") + "?" + urlencode({"next": activate}),
    ]
    assert "Staff need two-factor authentication" in response.content.decode()
    response = client.post(reverse("account_reauthenticate"), {"password": PASSWORD, "next": activate}, follow=True)
    assert response.redirect_chain[-1][0] == activate
    assert "<svg" in response.content.decode()


def test_staff_set_up_an_authenticator_app_then_the_admin_opens(staff):
    client = Client()
    assert log_in(client, staff.email, PASSWORD).status_code == 302
    confirm_password(client, PASSWORD)
    page = client.get(reverse("mfa_activate_totp"))
    assert page.status_code == 200
    secret = page.context["form"].secret
    response = client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})
    assert response.status_code == 302
    # This session logged in with a password only: the admin asks for a code first (here a recovery code).
    response = client.get("/admin/", follow=True)
    assert response.redirect_chain[-1][0] == reverse("mfa_reauthenticate") + "?" + urlencode({"next": "/admin/"})
    response = client.post(
        reverse("mfa_reauthenticate"), {"code": unused_recovery_codes(staff)[0], "next": "/admin/"}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/admin/"
    assert response.status_code == 200
    assert "Site administration" in response.content.decode()


def test_staff_with_an_authenticator_app_log_in_with_a_code(staff):
    client = Client()
    log_in_with_second_factor(client, user=staff, password=PASSWORD, secret=enable_totp(staff))
    assert client.get("/admin/").status_code == 200


def test_a_wrong_code_keeps_the_login_unfinished(staff):
    enable_totp(staff)
    client = Client()
    assert log_in(client, staff.email, PASSWORD)["Location"] == reverse("mfa_authenticate")
    response = client.post(reverse("mfa_authenticate"), {"code": "000000"})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/")["Location"].startswith("/admin/login/")


def test_the_admin_is_refused_to_users_who_are_not_staff(alice):
    EmailAddress.objects.create(user=alice, email=alice.email, verified=True, primary=True)
    client = Client()
    log_in_with_second_factor(client, user=alice, password="correct horse battery", secret=enable_totp(alice))
    response = client.get("/admin/", follow=True)
    assert response.status_code == 403


def test_every_user_may_turn_on_a_second_factor(alice):
    EmailAddress.objects.create(user=alice, email=alice.email, verified=True, primary=True)
    client = Client()
    assert log_in(client, alice.email, "correct horse battery").status_code == 302
    confirm_password(client, "correct horse battery")
    account = client.get(reverse("account_email")).content.decode()
    assert reverse("mfa_index") in account
    assert "Set up an authenticator app" in client.get(reverse("mfa_index")).content.decode()

    page = client.get(reverse("mfa_activate_totp")).content.decode()
    assert "<svg" in page  # the QR code, inline: no data: image for a Content-Security-Policy to allow
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)  # no inline script
    assert " style=" not in page
    secret = client.get(reverse("mfa_activate_totp")).context["form"].secret
    assert client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)}).status_code == 302

    codes_page = client.get(reverse("mfa_view_recovery_codes")).content.decode()
    assert unused_recovery_codes(alice)[0] in codes_page
    assert "Turn off" in client.get(reverse("mfa_index")).content.decode()
