"""Helpers of the billing tests: the Stripe stand-in wired to the live server, and the steps a customer takes."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from django.core.management import call_command

from accounts.models import User
from plans.models import Subscription
from plans.stripe_standin.server import StripeStandInThread, signature_header
from tests.helpers import wait_until

GOOD_CARD = "4242 4242 4242 4242"
FAILING_CARD = "4000 0000 0000 0341"  # can be saved, cannot be charged


@contextmanager
def stripe_standin_for(settings, *, webhook_url: str) -> Iterator[StripeStandInThread]:
    """A fresh stand-in (its own clock and objects), the project pointed at it, and the plans' prices made."""
    standin = StripeStandInThread(webhook_url=webhook_url).start()
    settings.STRIPE_SECRET_KEY = standin.api_key
    settings.STRIPE_WEBHOOK_SECRET = standin.webhook_secret
    settings.STRIPE_API_BASE = standin.base_url
    try:
        call_command("stripe_plans", stdout=io.StringIO())
        yield standin
    finally:
        standin.stop()


def billing_row(user: User) -> Subscription | None:
    return Subscription.objects.select_related("plan", "scheduled_plan").filter(user=user).first()


def wait_for_row(user: User, condition) -> Subscription:
    """Wait until the webhooks have brought the user's row to `condition`; returns it."""
    found: list[Subscription] = []

    def holds() -> bool:
        row = billing_row(user)
        if row is not None and condition(row):
            found.append(row)
            return True
        return False

    wait_until(holds, timeout=20)
    return found[-1]


def wait_for_deliveries(standin: StripeStandInThread) -> None:
    wait_until(lambda: standin.sender is None or standin.sender.pending == 0, timeout=30)


def pay(checkout_url: str, card: str = GOOD_CARD) -> httpx.Response:
    """The Pay button of the stand-in's Checkout page."""
    return httpx.post(checkout_url, data={"card": card})


def post_event(base_url: str, event_payload: bytes, secret: str, *, signature: str | None = None) -> httpx.Response:
    header = signature if signature is not None else signature_header(event_payload, secret)
    return httpx.post(
        base_url + "/stripe/webhook/",
        content=event_payload,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        timeout=30,
    )
