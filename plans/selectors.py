"""Reads of plans and subscriptions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet

from plans.models import Plan, Subscription

if TYPE_CHECKING:
    from accounts.models import User


def plan_list_public() -> QuerySet[Plan]:
    return Plan.objects.filter(is_public=True).order_by("display_order", "id")


def plan_get_default() -> Plan:
    return Plan.objects.get(is_default=True)


def plan_for_price(*, price_id: str) -> Plan | None:
    return Plan.objects.filter(stripe_price_id=price_id).first() if price_id else None


def subscription_for_user(*, user: User) -> Subscription | None:
    """The user's billing row (Stripe customer and subscription), if they ever went to checkout."""
    return Subscription.objects.select_related("plan", "scheduled_plan").filter(user=user).first()


def plan_for_user(*, user: User) -> Plan:
    """The plan whose limits apply now.

    A subscription that is active, trialing or past due (Stripe still retrying) gives its plan;
    otherwise the plan staff set on the account, else the default plan (Free).
    """
    subscription = subscription_for_user(user=user)
    if subscription is not None and subscription.grants_plan:
        return subscription.plan
    return user.plan if user.plan_id else plan_get_default()
