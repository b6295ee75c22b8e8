"""Buying Pro in a real browser: the stand-in's Checkout page, our success page, and the gateway's new limits."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from allauth.account.models import EmailAddress
from playwright.sync_api import expect

from plans.stripe_standin.server import StripeStandInThread
from tests.e2e.conftest import Journey, off_loop
from tests.plans.billing import stripe_standin_for, wait_for_row

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"  # the `gateway` fixture's user
SLOW = 15_000  # ms: a shared, busy machine may take seconds for a page or a webhook
HELLO = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "Hello"}]}


@pytest.fixture
def billing(gateway, settings) -> Iterator[StripeStandInThread]:
    """Alice on Free with a verified address, and the Stripe stand-in sending webhooks to the live server."""

    def on_free() -> None:
        gateway.user.plan = None
        gateway.user.save()
        EmailAddress.objects.create(user=gateway.user, email=gateway.user.email, verified=True, primary=True)

    off_loop(on_free)
    with stripe_standin_for(settings, webhook_url=gateway.base_url + "/stripe/webhook/") as standin:
        yield standin


def messages_status(gateway) -> httpx.Response:
    return httpx.post(gateway.base_url + "/v1/messages", json=HELLO, headers={"x-api-key": gateway.key})


def log_in(journey: Journey, email: str) -> None:
    page = journey.page
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible(timeout=SLOW)


def test_upgrade_to_pro_in_the_browser_lifts_the_gateway_limit_at_once(billing, gateway, journey: Journey):
    # On Free: 10 requests a minute, the 11th is refused.
    assert [messages_status(gateway).status_code for _ in range(10)] == [200] * 10
    refused = messages_status(gateway)
    assert refused.status_code == 429
    assert "Free plan allows 10 requests per minute" in refused.json()["error"]["message"]

    page = journey.page
    log_in(journey, gateway.user.email)
    expect(page.get_by_role("heading", name="Your plan: Free")).to_be_visible(timeout=SLOW)
    page.get_by_role("navigation", name="Dashboard").get_by_role("link", name="Plan & billing").click()
    journey.step("plan-page")
    page.get_by_role("button", name="Upgrade to Pro").click()

    # The stand-in's Checkout page, on its own origin.
    expect(page.get_by_role("heading", name="Subscribe to Pro")).to_be_visible(timeout=SLOW)
    assert page.url.startswith(billing.base_url + "/c/pay/")
    journey.step("checkout")
    page.get_by_role("button", name="Pay").click()

    # Back on our success page, which waits for Stripe's webhook.
    expect(page.get_by_role("heading", name="Thank you")).to_be_visible(timeout=SLOW)
    assert page.url.endswith("/dashboard/plan/paid/")
    expect(page.locator("#checkout-status")).to_have_text(re.compile(r"You are on the Pro plan now"), timeout=SLOW)
    journey.step("success")
    page.get_by_role("link", name="Go to the dashboard").click()
    expect(page.get_by_role("heading", name="Your plan: Pro")).to_be_visible(timeout=SLOW)
    journey.step("dashboard-pro")

    # The gateway follows at once: 20 a minute on the same key, so 10 more now, then a refusal.
    assert [messages_status(gateway).status_code for _ in range(10)] == [200] * 10
    refused = messages_status(gateway)
    assert refused.status_code == 429
    assert "Pro plan allows 20 requests per minute" in refused.json()["error"]["message"]


def test_a_past_due_account_sees_the_banner_and_fixes_its_card_in_the_portal(billing, gateway, journey: Journey):
    page = journey.page
    log_in(journey, gateway.user.email)
    page.goto("/dashboard/plan/")
    page.get_by_role("button", name="Upgrade to Pro").click()
    page.get_by_role("button", name="Pay").click()
    expect(page.locator("#checkout-status")).to_have_text(re.compile(r"You are on the Pro plan now"), timeout=SLOW)

    customer_id = next(iter(billing.world.table("customer")))
    billing.world.card_set(customer_id, "4000 0000 0000 0341")
    billing.advance(days=31)
    off_loop(lambda: wait_for_row(gateway.user, lambda row: row.status == "past_due"))
    page.goto("/dashboard/")
    expect(page.get_by_text("Your last payment failed")).to_be_visible(timeout=SLOW)
    expect(page.get_by_role("heading", name="Your plan: Pro")).to_be_visible(timeout=SLOW)
    journey.step("past-due")

    page.get_by_role("button", name="Update your card").click()
    expect(page.get_by_role("heading", name="Billing")).to_be_visible(timeout=SLOW)
    page.get_by_label("New card number").fill("4242 4242 4242 4242")
    page.get_by_role("button", name="Update card").click()
    expect(page.get_by_text("Status: active")).to_be_visible(timeout=SLOW)
    journey.step("portal-fixed")
    page.get_by_role("link", name="Return to the site").click()
    expect(page.get_by_role("heading", name="You are on the Pro plan")).to_be_visible(timeout=SLOW)
    expect(page.get_by_text("Your last payment failed")).to_have_count(0)
