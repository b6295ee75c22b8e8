"""Every call this project makes to Stripe, through the official `stripe` library.

A thin layer: each function is one or two Stripe requests, and what comes back is turned into the
few plain values the rest of the code needs (`StripeSubscription`, `StripeInvoice`), so that
Stripe's object shapes are known here only. Errors are the library's (`stripe.StripeError` and
its subclasses); callers decide what a failure means for the person waiting.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe
from django.conf import settings

# Whole-request retries on network errors and 409/5xx, with Stripe's idempotency keys.
NETWORK_RETRIES = 2


def client() -> stripe.StripeClient:
    return _client_for(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE)


@functools.lru_cache(maxsize=4)
def _client_for(secret_key: str, api_base: str) -> stripe.StripeClient:
    # One client per configuration, so that its HTTP connections are kept and reused.
    base_addresses = {"api": api_base} if api_base else None
    return stripe.StripeClient(secret_key, base_addresses=base_addresses, max_network_retries=NETWORK_RETRIES)


def timestamp_to_datetime(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


@dataclass(frozen=True)
class StripeSubscription:
    """A subscription as Stripe holds it now, reduced to what decides a plan."""

    id: str
    customer_id: str
    status: str
    item_id: str
    price_id: str
    created: datetime
    current_period_end: datetime | None
    cancel_at_period_end: bool
    schedule_id: str | None
    scheduled_price_id: str | None
    scheduled_change_at: datetime | None


@dataclass(frozen=True)
class StripeInvoice:
    id: str
    number: str
    status: str
    amount_due_cents: int
    amount_paid_cents: int
    currency: str
    created: datetime
    hosted_invoice_url: str


def _subscription_of(data: dict[str, Any]) -> StripeSubscription:
    (item,) = data["items"]["data"]  # one price per subscription: the plan
    # Since API version 2025-03-31 the billing period lives on the item.
    period_end = item.get("current_period_end") or data.get("current_period_end")
    schedule = data.get("schedule")
    scheduled_price_id, scheduled_change_at = _next_phase(schedule, now_ends=period_end)
    # Newer Dashboard and Portal cancellations set `cancel_at` (the period end) instead of the flag.
    cancels = bool(data.get("cancel_at_period_end")) or data.get("cancel_at") is not None
    return StripeSubscription(
        id=data["id"],
        customer_id=data["customer"] if isinstance(data["customer"], str) else data["customer"]["id"],
        status=data["status"],
        item_id=item["id"],
        price_id=item["price"]["id"],
        created=timestamp_to_datetime(data["created"]),
        current_period_end=timestamp_to_datetime(period_end),
        cancel_at_period_end=cancels,
        schedule_id=schedule["id"] if isinstance(schedule, dict) else schedule,
        scheduled_price_id=scheduled_price_id,
        scheduled_change_at=scheduled_change_at,
    )


def _next_phase(schedule: Any, *, now_ends: int | None) -> tuple[str | None, datetime | None]:
    """The price a schedule (expanded) moves the subscription to next, and when."""
    if not isinstance(schedule, dict) or schedule.get("status") not in {"active", "not_started"}:
        return None, None
    upcoming = [phase for phase in schedule["phases"] if now_ends is not None and phase["start_date"] >= now_ends]
    if not upcoming:
        return None, None
    phase = min(upcoming, key=lambda phase: phase["start_date"])
    return _price_id(phase["items"][0]["price"]), timestamp_to_datetime(phase["start_date"])


def _price_id(price: Any) -> str:
    return price if isinstance(price, str) else price["id"]


# --------------------------------------------------------------------------- customers and sessions


def customer_create(*, email: str, user_id: int) -> str:
    customer = client().v1.customers.create(params={"email": email, "metadata": {"user_id": str(user_id)}})
    return customer.id


def checkout_session_create(*, customer_id: str, price_id: str, user_id: int, success_url: str, cancel_url: str) -> str:
    """A hosted Checkout page that starts a subscription to one price; its URL."""
    session = client().v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer_id,
            "client_reference_id": str(user_id),
            "line_items": [{"price": price_id, "quantity": 1}],
            "allow_promotion_codes": True,
            "success_url": success_url,
            "cancel_url": cancel_url,
            "subscription_data": {"metadata": {"user_id": str(user_id)}},
        }
    )
    return session.url


def portal_session_create(*, customer_id: str, return_url: str) -> str:
    session = client().v1.billing_portal.sessions.create(params={"customer": customer_id, "return_url": return_url})
    return session.url


# --------------------------------------------------------------------------- subscriptions


def subscription_retrieve(subscription_id: str) -> StripeSubscription:
    data = client().v1.subscriptions.retrieve(subscription_id, params={"expand": ["schedule"]})
    return _subscription_of(data.to_dict())


def subscription_change_price_now(*, subscription: StripeSubscription, price_id: str) -> None:
    """Switch at once; the difference for the rest of the period is invoiced and charged now."""
    client().v1.subscriptions.update(
        subscription.id,
        params={
            "items": [{"id": subscription.item_id, "price": price_id}],
            "proration_behavior": "always_invoice",
            "cancel_at_period_end": False,
        },
    )


def subscription_change_price_at_period_end(*, subscription: StripeSubscription, price_id: str) -> None:
    """Keep the current price until the paid period ends, then move to `price_id` (a schedule)."""
    if subscription.current_period_end is None:
        raise ValueError("a subscription without a billing period cannot be rescheduled")
    stripe_client = client()
    schedule_id = subscription.schedule_id
    if schedule_id is None:
        schedule_id = stripe_client.v1.subscription_schedules.create(params={"from_subscription": subscription.id}).id
    schedule = stripe_client.v1.subscription_schedules.retrieve(schedule_id).to_dict()
    current = schedule.get("current_phase") or {}
    period_end = int(subscription.current_period_end.timestamp())
    stripe_client.v1.subscription_schedules.update(
        schedule_id,
        params={
            "end_behavior": "release",
            "phases": [
                {
                    "items": [{"price": subscription.price_id, "quantity": 1}],
                    "start_date": current.get("start_date", int(subscription.created.timestamp())),
                    "end_date": period_end,
                },
                {"items": [{"price": price_id, "quantity": 1}], "start_date": period_end},
            ],
        },
    )


def subscription_schedule_release(*, subscription: StripeSubscription) -> None:
    """Drop a scheduled change: the subscription goes on as it is."""
    if subscription.schedule_id is not None:
        client().v1.subscription_schedules.release(subscription.schedule_id)


def subscription_set_cancel_at_period_end(*, subscription: StripeSubscription, cancel: bool) -> None:
    client().v1.subscriptions.update(subscription.id, params={"cancel_at_period_end": cancel})


def subscription_cancel_now(subscription_id: str) -> None:
    client().v1.subscriptions.cancel(subscription_id)


# --------------------------------------------------------------------------- invoices


def invoice_list(*, customer_id: str, limit: int = 24) -> list[StripeInvoice]:
    found = client().v1.invoices.list(params={"customer": customer_id, "limit": limit})
    invoices = [invoice.to_dict() for invoice in found.data]
    return [
        StripeInvoice(
            id=invoice["id"],
            number=invoice.get("number") or invoice["id"],
            status=invoice.get("status") or "",
            amount_due_cents=invoice["amount_due"],
            amount_paid_cents=invoice["amount_paid"],
            currency=invoice["currency"],
            created=timestamp_to_datetime(invoice["created"]),
            hosted_invoice_url=invoice.get("hosted_invoice_url") or "",
        )
        for invoice in invoices
    ]


# --------------------------------------------------------------------------- webhooks


def webhook_event(*, payload: bytes, signature: str) -> dict[str, Any]:
    """The event of a webhook delivery, once its signature is verified with our endpoint's secret.

    Raises stripe.SignatureVerificationError for a bad signature and ValueError for a body that is not
    a JSON object (malformed JSON, or not UTF-8).
    """
    try:
        event = stripe.Webhook.construct_event(payload, signature, settings.STRIPE_WEBHOOK_SECRET)
    except (TypeError, AttributeError) as error:  # valid JSON that is not an object, e.g. a list
        raise ValueError(f"not a Stripe event: {error}") from error
    return event.to_dict()


# --------------------------------------------------------------------------- products and prices


def product_ensure(*, product_id: str, name: str, description: str) -> bool:
    """The product with our own id exists at Stripe; True when this call created it."""
    stripe_client = client()
    try:
        stripe_client.v1.products.retrieve(product_id)
    except stripe.InvalidRequestError as error:
        if error.http_status != 404:
            raise
        stripe_client.v1.products.create(
            params={"id": product_id, "name": name, **({"description": description} if description else {})}
        )
        return True
    return False


def monthly_price_ensure(*, product_id: str, lookup_key: str, amount_cents: int) -> tuple[str, bool]:
    """The active monthly USD price of `lookup_key` for this amount; a new one (taking over the lookup
    key) when the amount changed. Returns its id and whether it was created."""
    stripe_client = client()
    found = stripe_client.v1.prices.list(params={"lookup_keys": [lookup_key], "active": True, "limit": 1}).data
    if found and found[0]["unit_amount"] == amount_cents and found[0]["product"] == product_id:
        return found[0]["id"], False
    price = stripe_client.v1.prices.create(
        params={
            "product": product_id,
            "currency": "usd",
            "unit_amount": amount_cents,
            "recurring": {"interval": "month"},
            "lookup_key": lookup_key,
            "transfer_lookup_key": True,
        }
    )
    return price.id, True


def price_describe(price_id: str) -> tuple[int, bool] | None:
    """A price's amount in cents and whether it is active; None when Stripe does not know it."""
    try:
        price = client().v1.prices.retrieve(price_id).to_dict()
    except stripe.InvalidRequestError as error:
        if error.http_status == 404:
            return None
        raise
    return price["unit_amount"], price["active"]
