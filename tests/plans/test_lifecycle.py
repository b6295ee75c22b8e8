"""The subscription's life against the Stripe stand-in, with webhooks to the live server: buy, upgrade,
downgrade and cancel at period end, a failed payment and its fix, unpaid, account deletion."""

from __future__ import annotations

import json

import httpx
import pytest
from django.urls import reverse

from accounts.models import User
from plans.models import Plan, Subscription
from plans.selectors import plan_for_user
from tests.dashboard.conftest import post_form
from tests.plans.billing import (
    FAILING_CARD,
    GOOD_CARD,
    billing_row,
    pay,
    post_event,
    wait_for_deliveries,
    wait_for_row,
)

pytestmark = pytest.mark.usefixtures("standin")


def subscribe(client, user: User, slug: str) -> Subscription:
    response = post_form(client, reverse("plans:checkout", args=[slug]))
    assert response.status_code == 302, response.content
    paid = pay(response["Location"])
    assert paid.status_code == 303
    assert paid.headers["location"].endswith(reverse("plans:checkout_success"))
    return wait_for_row(user, lambda row: row.status == "active" and row.plan.slug == slug)


def plan_page(client) -> str:
    return client.get(reverse("plans:plan")).content.decode()


def test_checkout_buys_pro_with_one_customer_reused(alice, alice_client, standin):
    first = post_form(alice_client, reverse("plans:checkout", args=["pro"]))
    second = post_form(alice_client, reverse("plans:checkout", args=["pro"]))
    assert first["Location"] != second["Location"]  # two sessions, one customer
    assert len(standin.world.table("customer")) == 1
    session = next(iter(standin.world.table("checkout_session").values()))
    assert session["client_reference_id"] == str(alice.pk)
    assert session["allow_promotion_codes"]

    assert pay(second["Location"]).status_code == 303
    row = wait_for_row(alice, lambda row: row.status == "active")
    assert row.plan.slug == "pro"
    assert plan_for_user(user=alice).slug == "pro"
    assert "You are on the Pro plan" in plan_page(alice_client)
    assert "Renews on" in plan_page(alice_client)


def test_a_declined_card_buys_nothing(alice, alice_client, standin):
    response = post_form(alice_client, reverse("plans:checkout", args=["pro"]))
    declined = pay(response["Location"], card="4000 0000 0000 0002")
    assert declined.status_code == 402
    assert "declined" in declined.text
    assert billing_row(alice).status == ""
    assert plan_for_user(user=alice).slug == "free"


def test_the_success_page_waits_for_the_webhook_and_says_the_plan(alice, alice_client, standin):
    subscribe(alice_client, alice, "pro")
    page = alice_client.get(reverse("plans:checkout_success")).content.decode()
    assert "You are on the <strong>Pro</strong> plan now" in page
    assert "hx-trigger" not in page


def test_an_upgrade_applies_at_once_and_charges_the_prorated_difference(alice, alice_client, standin):
    subscribe(alice_client, alice, "pro")
    response = post_form(alice_client, reverse("plans:checkout", args=["max-5x"]))
    assert response.status_code == 302
    assert "Upgraded" in plan_page(alice_client)
    row = wait_for_row(alice, lambda row: row.plan.slug == "max-5x")
    assert row.status == "active"
    invoices = standin.world.table("invoice").values()
    prorations = [invoice for invoice in invoices if invoice["billing_reason"] == "subscription_update"]
    assert len(prorations) == 1
    assert 7_900 <= prorations[0]["amount_due"] <= 8_000  # (100 - 20) dollars for almost a whole month
    assert prorations[0]["status"] == "paid"


def test_a_downgrade_waits_for_the_end_of_the_period(alice, alice_client, standin):
    subscribed = subscribe(alice_client, alice, "max-5x")
    post_form(alice_client, reverse("plans:checkout", args=["pro"]))
    row = wait_for_row(alice, lambda row: row.scheduled_plan is not None)
    assert row.scheduled_plan.slug == "pro"
    assert row.scheduled_change_at == subscribed.current_period_end
    assert row.plan.slug == "max-5x"
    page = plan_page(alice_client)
    assert "You move to Pro on" in page
    assert f"{subscribed.current_period_end:%B} {subscribed.current_period_end.day}" in page

    standin.advance(days=29)
    wait_for_deliveries(standin)
    assert plan_for_user(user=alice).slug == "max-5x"

    standin.advance(days=2)
    row = wait_for_row(alice, lambda row: row.plan.slug == "pro")
    assert row.scheduled_plan is None
    assert row.current_period_end > subscribed.current_period_end
    assert plan_for_user(user=alice).slug == "pro"


def test_staying_on_the_plan_drops_a_scheduled_downgrade(alice, alice_client, standin):
    subscribe(alice_client, alice, "max-5x")
    post_form(alice_client, reverse("plans:checkout", args=["pro"]))
    wait_for_row(alice, lambda row: row.scheduled_plan is not None)
    post_form(alice_client, reverse("plans:resume"))
    wait_for_row(alice, lambda row: row.scheduled_plan is None)
    standin.advance(days=31)
    wait_for_deliveries(standin)
    assert plan_for_user(user=alice).slug == "max-5x"


def test_cancel_keeps_the_plan_until_the_period_ends_then_free(alice, alice_client, standin):
    subscribed = subscribe(alice_client, alice, "pro")
    post_form(alice_client, reverse("plans:cancel"))
    wait_for_row(alice, lambda row: row.cancel_at_period_end)
    page = plan_page(alice_client)
    assert "subscription ends on" in page
    assert f"{subscribed.current_period_end:%B} {subscribed.current_period_end.day}" in page
    assert plan_for_user(user=alice).slug == "pro"

    standin.advance(days=31)
    row = wait_for_row(alice, lambda row: row.status == "canceled")
    assert not row.grants_plan
    assert plan_for_user(user=alice).slug == "free"
    assert "You are on the Free plan" in plan_page(alice_client)


def test_switching_to_free_is_a_cancellation_at_period_end(alice, alice_client, standin):
    subscribe(alice_client, alice, "pro")
    post_form(alice_client, reverse("plans:checkout", args=["free"]))
    wait_for_row(alice, lambda row: row.cancel_at_period_end)
    assert plan_for_user(user=alice).slug == "pro"


def test_a_failed_renewal_is_past_due_with_a_banner_until_the_card_is_fixed(alice, alice_client, standin):
    row = subscribe(alice_client, alice, "pro")
    standin.world.card_set(row.stripe_customer_id, FAILING_CARD)
    standin.advance(days=31)
    wait_for_row(alice, lambda row: row.status == "past_due")
    assert plan_for_user(user=alice).slug == "pro"  # Stripe is still retrying
    overview = alice_client.get(reverse("dashboard:overview")).content.decode()
    assert "Your last payment failed" in overview
    assert "Update your card" in overview

    portal = post_form(alice_client, reverse("plans:portal"))
    assert portal.status_code == 302
    assert portal["Location"].startswith(standin.base_url + "/p/session/")
    fixed = httpx.post(portal["Location"] + "/card", data={"card": GOOD_CARD}, follow_redirects=True)
    assert fixed.status_code == 200
    wait_for_row(alice, lambda row: row.status == "active")
    assert "Your last payment failed" not in alice_client.get(reverse("dashboard:overview")).content.decode()


def test_when_every_retry_fails_the_account_is_unpaid_and_free(alice, alice_client, standin):
    row = subscribe(alice_client, alice, "pro")
    standin.world.card_set(row.stripe_customer_id, FAILING_CARD)
    standin.advance(days=31)
    wait_for_row(alice, lambda row: row.status == "past_due")
    standin.advance(days=8)
    wait_for_row(alice, lambda row: row.status == "unpaid")
    assert plan_for_user(user=alice).slug == "free"


def test_invoices_list_stripe_hosted_pages(alice, alice_client, standin):
    subscribe(alice_client, alice, "pro")
    page = alice_client.get(reverse("plans:invoices")).content.decode()
    (invoice,) = standin.world.table("invoice").values()
    assert invoice["hosted_invoice_url"] in page
    assert "20.00 USD" in page
    assert httpx.get(invoice["hosted_invoice_url"]).status_code == 200


def test_deleting_the_account_cancels_its_subscription(alice, alice_client, standin):
    row = subscribe(alice_client, alice, "pro")
    User.objects.get(pk=alice.pk).delete()
    assert standin.world.get("subscription", row.stripe_subscription_id)["status"] == "canceled"
    wait_for_deliveries(standin)  # the deletion event meets an unknown customer: acknowledged


def test_the_dashboard_buttons_reach_only_the_users_own_customer(alice, bob, alice_client, bob_client, standin):
    alice_row = subscribe(alice_client, alice, "pro")
    # Bob never bought anything: no portal, nothing to cancel, and Alice's subscription is untouched.
    assert post_form(bob_client, reverse("plans:portal")).status_code == 302
    assert "nothing to manage" in plan_page(bob_client)
    post_form(bob_client, reverse("plans:cancel"))
    assert "no subscription to change" in plan_page(bob_client)
    assert not standin.world.get("subscription", alice_row.stripe_subscription_id)["cancel_at_period_end"]

    # Bob's checkout and portal are his own customer's.
    checkout = post_form(bob_client, reverse("plans:checkout", args=["max-5x"]))
    bob_row = billing_row(bob)
    assert bob_row.stripe_customer_id != alice_row.stripe_customer_id
    session_id = checkout["Location"].rsplit("/", 1)[1]
    assert standin.world.get("checkout_session", session_id)["customer"] == bob_row.stripe_customer_id
    portal = post_form(alice_client, reverse("plans:portal"))
    portal_id = portal["Location"].rsplit("/", 1)[1]
    assert standin.world.get("portal_session", portal_id)["customer"] == alice_row.stripe_customer_id
    assert Plan.objects.get(slug="pro") == plan_for_user(user=alice)
    assert plan_for_user(user=bob).slug == "free"


def test_after_a_cancellation_a_new_purchase_wins_over_late_events_of_the_old_one(
    alice, alice_client, standin, asgi_server
):
    first = subscribe(alice_client, alice, "pro")
    post_form(alice_client, reverse("plans:cancel"))
    wait_for_row(alice, lambda row: row.cancel_at_period_end)
    standin.advance(days=31)
    wait_for_row(alice, lambda row: row.status == "canceled")

    second = subscribe(alice_client, alice, "max-5x")
    assert second.stripe_subscription_id != first.stripe_subscription_id
    assert second.stripe_customer_id == first.stripe_customer_id

    # A late event about the old subscription (a new event id, as a Stripe retry of another event would be).
    old = standin.world.get("subscription", first.stripe_subscription_id)
    late = {"id": "evt_late_old", "object": "event", "type": "customer.subscription.deleted", "data": {"object": old}}
    assert post_event(asgi_server.base_url, json.dumps(late).encode(), standin.webhook_secret).text == "handled."
    row = billing_row(alice)
    assert row.stripe_subscription_id == second.stripe_subscription_id
    assert row.status == "active"
    assert plan_for_user(user=alice).slug == "max-5x"


def test_an_unpaid_subscription_is_settled_in_the_portal_not_by_a_second_checkout(alice, alice_client, standin):
    row = subscribe(alice_client, alice, "pro")
    standin.world.card_set(row.stripe_customer_id, FAILING_CARD)
    standin.advance(days=39)
    wait_for_row(alice, lambda row: row.status == "unpaid")
    response = post_form(alice_client, reverse("plans:checkout", args=["pro"]))
    assert response["Location"] == reverse("plans:plan")
    assert "unpaid invoice" in plan_page(alice_client)
    assert len(standin.world.table("checkout_session")) == 1
