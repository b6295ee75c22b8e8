"""Stripe's webhooks: the one writer of a subscription's state.

Each delivery is handled once (its event id is stored in the same transaction), and what it
writes does not come from the event: the subscription is read from Stripe as it is now. So
duplicates, replays and events arriving out of order all end in Stripe's latest state, and
concurrent deliveries for one customer take turns on that customer's row.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any

import stripe
from django.db import transaction

from llmapi.invalidation import publish
from plans import stripe_gateway
from plans.models import StripeEvent, Subscription
from plans.selectors import plan_for_price

logger = logging.getLogger(__name__)

SUBSCRIPTION_EVENTS = frozenset(
    {
        "checkout.session.completed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.paid",
        "invoice.payment_failed",
    }
)


class MalformedEventError(ValueError):
    """A verified delivery whose event lacks what its type promises."""


class Outcome(enum.StrEnum):
    HANDLED = "handled"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    UNKNOWN_CUSTOMER = "unknown customer"
    UNKNOWN_SUBSCRIPTION = "unknown subscription"


@dataclass(frozen=True)
class EventTarget:
    """Which customer and subscription an event is about."""

    event_id: str
    event_type: str
    customer_id: str | None
    subscription_id: str | None


def event_target(event: Any) -> EventTarget:
    """Read the ids out of a verified event; raises MalformedEventError when they are not there."""
    try:
        event_id, event_type = event["id"], event["type"]
        if not isinstance(event_id, str) or not isinstance(event_type, str):
            raise MalformedEventError("event id and type must be strings")
        if event_type not in SUBSCRIPTION_EVENTS:
            return EventTarget(event_id, event_type, None, None)
        data = event["data"]["object"]
        return EventTarget(event_id, event_type, _id_of(data.get("customer")), _subscription_id_of(event_type, data))
    except (KeyError, TypeError, AttributeError) as error:
        raise MalformedEventError(f"not a Stripe event: {error!r}") from error


def _subscription_id_of(event_type: str, data: Any) -> str | None:
    if event_type.startswith("customer.subscription."):
        return _id_of(data["id"])
    if event_type == "checkout.session.completed":
        return _id_of(data.get("subscription"))
    # Invoices name their subscription under `parent` since API version 2025-03-31, at the top before.
    parent = data.get("parent") or {}
    details = parent.get("subscription_details") or {}
    return _id_of(details.get("subscription") or data.get("subscription"))


def _id_of(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    return _id_of(value["id"])  # an expanded object


def stripe_event_handle(*, target: EventTarget) -> Outcome:
    """Handle one verified event. Raises stripe.StripeError when Stripe cannot be asked; nothing is
    recorded then, so Stripe's redelivery is handled in full."""
    with transaction.atomic():
        # A concurrent duplicate waits here on the primary key until the first commits, then finds it.
        _, first_delivery = StripeEvent.objects.get_or_create(
            id=target.event_id, defaults={"type": target.event_type[:100]}
        )
        if not first_delivery:
            return Outcome.DUPLICATE
        if target.event_type not in SUBSCRIPTION_EVENTS or target.subscription_id is None:
            return Outcome.IGNORED
        # Row lock: Stripe sends several events per change, often at once. One at a time, each reads
        # Stripe's state after the previous one wrote, so the last writer writes the latest state.
        account = Subscription.objects.select_for_update().filter(stripe_customer_id=target.customer_id).first()
        if account is None:
            logger.warning(
                "Stripe event %s (%s) names customer %r, unknown here; acknowledged and ignored",
                target.event_id,
                target.event_type,
                target.customer_id,
            )
            return Outcome.UNKNOWN_CUSTOMER
        try:
            current = stripe_gateway.subscription_retrieve(target.subscription_id)
        except stripe.InvalidRequestError as error:
            if error.http_status != 404:
                raise
            logger.warning(
                "Stripe event %s names subscription %s, which Stripe does not know",
                target.event_id,
                target.subscription_id,
            )
            return Outcome.UNKNOWN_SUBSCRIPTION
        subscription_apply(account=account, current=current)
        return Outcome.HANDLED


def subscription_apply(*, account: Subscription, current: stripe_gateway.StripeSubscription) -> None:
    """Store Stripe's state of the subscription on the (locked) row, and let every gateway know."""
    if current.customer_id != account.stripe_customer_id:
        logger.error("subscription %s belongs to customer %s, not %s", current.id, current.customer_id, account)
        return
    if not _replaces(account=account, current=current):
        logger.info("subscription %s is older than %s; kept the latter", current.id, account.stripe_subscription_id)
        return
    plan = plan_for_price(price_id=current.price_id)
    if plan is None:
        logger.error("subscription %s has price %s, which no plan sells", current.id, current.price_id)
    account.stripe_subscription_id = current.id
    account.plan = plan
    account.status = current.status
    account.started_at = current.created
    account.current_period_end = current.current_period_end
    account.cancel_at_period_end = current.cancel_at_period_end
    account.scheduled_plan = plan_for_price(price_id=current.scheduled_price_id or "")
    account.scheduled_change_at = current.scheduled_change_at if account.scheduled_plan else None
    account.save()
    # After commit: every gateway process reloads this user's keys, and with them the plan's limits.
    publish(f"user:{account.user_id}")


def _replaces(*, account: Subscription, current: stripe_gateway.StripeSubscription) -> bool:
    """Whether `current` is the subscription the row should describe.

    The same one, or the row has none yet: yes. Another one: only a live subscription replaces an
    ended one (a late event of an old, cancelled subscription must not undo a new purchase), and of
    two live ones the newer wins.
    """
    if account.stripe_subscription_id in {"", current.id}:
        return True
    if current.status not in Subscription.ENTITLED_STATUSES:
        return False
    return not account.is_live or account.started_at is None or current.created > account.started_at
