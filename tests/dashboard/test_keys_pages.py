"""The key pages: list, create (the full key shown once), delete with confirmation, the plan's allowance."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from keys import keyformat
from keys.models import ApiKey
from keys.services import api_key_create
from plans.models import Plan
from tests.dashboard.conftest import csrf_token, logged_in_client, post_form

pytestmark = pytest.mark.django_db

KEY_PATTERN = re.compile(r"sk-llmapi-[0-9A-Za-z]{46}")
KEYS_URL = reverse("keys:list")


def full_keys_in(response) -> set[str]:
    return set(KEY_PATTERN.findall(response.content.decode()))


def test_the_key_page_needs_a_login(client):
    response = client.get(KEYS_URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_list_shows_name_masked_key_and_dates(alice, alice_client):
    created = api_key_create(user=alice, name="laptop")
    page = alice_client.get(KEYS_URL).content.decode()
    assert "laptop" in page
    assert created.api_key.masked in page
    assert created.secret not in page
    assert "Never" in page  # not used yet
    assert "1 of 2 on the Free plan" in page


def test_created_key_is_shown_once_and_works(alice, alice_client):
    response = post_form(alice_client, KEYS_URL, {"name": "  laptop  "})
    assert response.status_code == 201
    assert response["Cache-Control"].startswith("max-age=0")  # never_cache: no-cache, no-store, ...
    assert "no-store" in response["Cache-Control"]
    (secret,) = full_keys_in(response)
    assert keyformat.is_well_formed(secret)
    stored = ApiKey.objects.get(user=alice)
    assert stored.name == "laptop"
    assert stored.hashed_key == keyformat.hash_key(secret)
    assert "Copy it now" in response.content.decode()

    # Every later page, the list included, shows only the masked form.
    for url in (
        KEYS_URL,
        reverse("dashboard:overview"),
        reverse("dashboard:usage"),
        reverse("keys:delete", args=[stored.pk]),
    ):
        later = alice_client.get(url)
        assert later.status_code == 200
        assert secret not in later.content.decode()
        assert not full_keys_in(later)


def test_created_key_is_not_kept_in_the_session(alice, alice_client):
    response = post_form(alice_client, KEYS_URL, {"name": "laptop"})
    (secret,) = full_keys_in(response)
    session = alice_client.session
    assert all(secret not in str(value) for value in session.values())


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("", "This field is required."),
        ("   ", "This field is required."),
        ("x" * 101, "Ensure this value has at most 100 characters"),
    ],
)
def test_bad_names_get_a_form_error(alice_client, name, error):
    response = post_form(alice_client, KEYS_URL, {"name": name})
    assert response.status_code == 200  # a page like any other: browsers log no failed request
    assert error in response.content.decode()
    assert not ApiKey.objects.exists()


def test_the_plans_key_allowance_is_a_form_error(alice, alice_client):
    for number in range(2):  # Free allows two
        post_form(alice_client, KEYS_URL, {"name": f"key {number}"})
    page = alice_client.get(KEYS_URL).content.decode()
    assert "allows 2 keys, and you have 2" in page
    response = post_form(alice_client, KEYS_URL, {"name": "one too many"})
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count("Your Free plan allows 2 keys. Delete one or upgrade your plan.") == 1
    assert "allows 2 keys, and you have 2" not in page  # the message once, not twice
    assert not full_keys_in(response)
    assert ApiKey.objects.filter(user=alice).count() == 2


def test_a_bigger_plan_allows_more_keys(alice, alice_client):
    alice.plan = Plan.objects.get(slug="pro")
    alice.save()
    allowance = alice.plan.max_keys
    for number in range(allowance):
        assert post_form(alice_client, KEYS_URL, {"name": f"key {number}"}).status_code == 201
    assert post_form(alice_client, KEYS_URL, {"name": "over"}).status_code == 200
    assert ApiKey.objects.filter(user=alice).count() == allowance


def test_an_unverified_account_cannot_create_keys(alice):
    client = logged_in_client(alice)  # no verified address
    page = client.get(KEYS_URL).content.decode()
    assert "Verify your email address to create API keys" in page
    assert f'action="{reverse("account_email")}"' in page  # the button that sends the link again
    response = post_form(client, KEYS_URL, {"name": "laptop"})
    assert response.status_code == 200
    assert "Verify your email address before creating an API key" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_the_resend_button_sends_a_new_verification_link(alice, mailoutbox):
    client = logged_in_client(alice)
    response = post_form(client, reverse("account_email"), {"email": alice.email, "action_send": ""})
    assert response.status_code == 302
    (mail,) = mailoutbox
    assert mail.to == [alice.email]
    assert "/accounts/confirm-email/" in mail.body


def test_create_needs_the_csrf_token(alice_client):
    response = alice_client.post(KEYS_URL, {"name": "laptop"})
    assert response.status_code == 403
    assert not ApiKey.objects.exists()


def test_delete_asks_first_then_revokes(alice, alice_client):
    created = api_key_create(user=alice, name="old")
    url = reverse("keys:delete", args=[created.api_key.pk])
    confirmation = alice_client.get(url)
    assert confirmation.status_code == 200
    assert "stop working at once" in confirmation.content.decode()
    assert ApiKey.objects.get().is_active

    response = post_form(alice_client, url)
    assert response.status_code == 302
    assert response["Location"] == KEYS_URL
    assert not ApiKey.objects.get().is_active
    page = alice_client.get(KEYS_URL).content.decode()
    assert "Deleted the key “old”" in page
    assert created.api_key.masked not in page.split("Your keys")[1]


def test_delete_needs_the_csrf_token(alice, alice_client):
    created = api_key_create(user=alice, name="old")
    response = alice_client.post(reverse("keys:delete", args=[created.api_key.pk]))
    assert response.status_code == 403
    assert ApiKey.objects.get().is_active


def test_someone_elses_key_cannot_be_seen_or_deleted(alice, bob_client):
    created = api_key_create(user=alice, name="alices")
    url = reverse("keys:delete", args=[created.api_key.pk])
    assert bob_client.get(url).status_code == 404
    assert post_form(bob_client, url).status_code == 404
    assert ApiKey.objects.get().is_active
    assert "alices" not in bob_client.get(KEYS_URL).content.decode()


def test_back_to_a_deleted_key_leads_to_the_list_and_an_unknown_key_is_404(alice, alice_client, bob_client):
    created = api_key_create(user=alice, name="old")
    url = reverse("keys:delete", args=[created.api_key.pk])
    post_form(alice_client, url)
    # Back after deleting (or a second tab) asks about a key that is gone: the list says so.
    back = alice_client.get(url, follow=True)
    assert back.redirect_chain == [(KEYS_URL, 302)]
    assert "That key is already deleted." in back.content.decode()
    assert post_form(alice_client, url).status_code == 302
    assert alice_client.get(reverse("keys:delete", args=[999_999])).status_code == 404
    assert bob_client.get(url).status_code == 404  # someone else's deleted key is still nobody's business


def test_htmx_requests_get_the_same_pages(alice_client):
    """hx-boost swaps whole pages: a boosted POST gets the page with the new key, or the form's errors."""
    headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_BOOSTED": "true", "HTTP_X_CSRFTOKEN": csrf_token(alice_client)}
    created = alice_client.post(KEYS_URL, {"name": "laptop"}, **headers)
    assert created.status_code == 201
    assert full_keys_in(created)
    invalid = alice_client.post(KEYS_URL, {"name": ""}, **headers)
    assert invalid.status_code == 200
    assert "This field is required." in invalid.content.decode()
