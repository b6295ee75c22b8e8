"""Accounts through allauth: sign up, verify, log in and out, reset the password, change the email address."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.test import Client
from django.urls import reverse

from accounts.models import User
from tests.dashboard.conftest import logged_in_client, post_form, verify_email

pytestmark = pytest.mark.django_db

PASSWORD = "a long and unusual passphrase"


def link_in(mail, path_prefix: str) -> str:
    match = re.search(r"https?://[^/\s]+(" + re.escape(path_prefix) + r"\S+)", mail.body)
    assert match, mail.body
    return match.group(1)


def sign_up(client: Client, email: str = "Carol@Example.com", password: str = PASSWORD):
    return post_form(client, reverse("account_signup"), {"email": email, "password1": password, "password2": password})


def test_signup_sends_a_verification_link_that_logs_in(mailoutbox):
    client = Client(enforce_csrf_checks=True)
    response = sign_up(client)
    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    user = User.objects.get()
    assert user.email == "carol@example.com"  # stored in one case
    assert not EmailAddress.objects.get(user=user).verified
    assert client.get(reverse("dashboard:overview")).status_code == 302  # not logged in before verifying

    (mail,) = mailoutbox
    assert mail.to == ["carol@example.com"]
    assert mail.subject == "[LLM API] Confirm your email address"
    confirm_url = link_in(mail, "/accounts/confirm-email/")
    page = client.get(confirm_url)
    assert page.status_code == 200
    assert "carol@example.com" in page.content.decode()
    assert EmailAddress.objects.get(user=user).verified is False  # a GET (a link scanner) verifies nothing

    confirmed = post_form(client, confirm_url)
    assert confirmed.status_code == 302
    assert EmailAddress.objects.get(user=user).verified
    assert client.get(reverse("dashboard:overview")).status_code == 200  # logged in by confirming


def test_signup_form_errors_are_shown(client):
    response = client.post(
        reverse("account_signup"), {"email": "not-an-email", "password1": "short", "password2": "other"}
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Enter a valid email address." in page
    assert not User.objects.exists()


def test_signing_up_again_with_a_taken_address_makes_no_second_account(alice, mailoutbox):
    sign_up(Client(), email="ALICE@example.com")
    assert User.objects.count() == 1


def test_an_unverified_account_cannot_log_in(mailoutbox):
    sign_up(Client())
    response = Client().post(reverse("account_login"), {"login": "carol@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    # Within the confirm_email rate limit no second mail goes out: the first link still works.
    assert len(mailoutbox) == 1


def test_login_by_email_in_any_case_and_logout_by_post(alice):
    verify_email(alice)
    client = Client(enforce_csrf_checks=True)
    response = post_form(
        client, reverse("account_login"), {"login": "Alice@Example.COM", "password": "correct horse battery"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard:overview")
    page = client.get(reverse("dashboard:overview")).content.decode()
    assert 'action="/accounts/logout/"' in page  # the nav's logout is a POST form

    assert client.get(reverse("account_logout")).status_code == 200  # GET only asks
    assert client.get(reverse("dashboard:overview")).status_code == 200
    assert client.post(reverse("account_logout")).status_code == 403  # no CSRF token, no logout
    assert post_form(client, reverse("account_logout")).status_code == 302
    assert client.get(reverse("dashboard:overview")).status_code == 302


def test_wrong_password_is_a_form_error(alice):
    verify_email(alice)
    response = Client().post(reverse("account_login"), {"login": alice.email, "password": "wrong"})
    assert response.status_code == 200
    assert "The email address and/or password you specified are not correct." in response.content.decode()


def test_failed_logins_are_rate_limited(alice):
    verify_email(alice)
    client = Client()
    for _ in range(5):
        client.post(reverse("account_login"), {"login": alice.email, "password": "wrong"})
    response = client.post(reverse("account_login"), {"login": alice.email, "password": "correct horse battery"})
    assert response.status_code == 200  # refused even with the right password, until the window passes
    assert "Too many failed login attempts" in response.content.decode()


def test_password_reset_by_mail(alice, mailoutbox):
    verify_email(alice)
    client = Client(enforce_csrf_checks=True)
    response = post_form(client, reverse("account_reset_password"), {"email": "alice@example.com"})
    assert response.status_code == 302
    (mail,) = mailoutbox
    reset_url = link_in(mail, "/accounts/password/reset/key/")
    form_page = client.get(reset_url, follow=True)
    assert "Choose a new password" in form_page.content.decode()
    new_password = "another long passphrase"
    done = post_form(client, form_page.redirect_chain[-1][0], {"password1": new_password, "password2": new_password})
    assert done.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password(new_password)


def test_password_reset_of_an_unknown_address_looks_the_same(mailoutbox):
    response = Client().post(reverse("account_reset_password"), {"email": "nobody@example.com"})
    assert response.status_code == 302
    assert response["Location"] == reverse("account_reset_password_done")


def test_email_change_takes_effect_once_the_new_address_is_confirmed(alice, mailoutbox):
    verify_email(alice)
    client = logged_in_client(alice)
    response = post_form(client, reverse("account_email"), {"email": "alice@new.example", "action_add": ""})
    assert response.status_code == 302
    page = client.get(reverse("account_email")).content.decode()
    assert "alice@new.example" in page
    assert "waiting for you to open the link" in page
    alice.refresh_from_db()
    assert alice.email == "alice@example.com"  # the old address still counts until the new one is confirmed

    (mail,) = mailoutbox
    assert mail.to == ["alice@new.example"]
    post_form(client, link_in(mail, "/accounts/confirm-email/"))
    alice.refresh_from_db()
    assert alice.email == "alice@new.example"


def test_password_change_page(alice):
    verify_email(alice)
    client = logged_in_client(alice)
    response = post_form(
        client,
        reverse("account_change_password"),
        {"oldpassword": "correct horse battery", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


@pytest.mark.parametrize(
    "url_name",
    [
        "account_login",
        "account_signup",
        "account_reset_password",
        "account_reset_password_done",
        "account_email_verification_sent",
        "account_inactive",
    ],
)
def test_every_public_account_page_is_ours(client, url_name):
    page = client.get(reverse(url_name)).content.decode()
    assert 'class="skip-link"' in page  # our base.html
    assert "/static/css/site.css" in page


def test_an_expired_confirmation_link_says_so(client):
    page = client.get(reverse("account_confirm_email", args=["not-a-real-key"])).content.decode()
    assert "This link has expired or is not valid." in page
