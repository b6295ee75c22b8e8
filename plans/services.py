"""What a person does with their plan: buy one, change it, cancel it, open the billing portal.

These functions ask Stripe to do things; they never write the subscription's state themselves.
Stripe answers with webhooks, and plans/webhooks.py is the one writer of that state, so that what
we store is always what Stripe holds. The user's own row is the only one these functions reach:
no id from the browser names a customer or a subscription.
"""

from __future__ import annotations

import enum
import logging
from typing import TYPE_CHECKING

import stripe
from django.db import transaction

from accounts.models import User
from plans import stripe_gateway
from plans.models import Plan, Subscription
from plans.selectors import plan_for_price, subscription_for_user

if TYPE_CHECKING:
    from plans.stripe_gateway import StripeSubscription

logger = logging.getLogger(__name__)


class BillingError(Exception):
    """A billing action that cannot be done; the message is for the person who asked."""


class PlanChange(enum.StrEnum):
    UPGRADED = "upgraded"
    DOWNGRADE_SCHEDULED = "downgrade_scheduled"
    CANCEL_SCHEDULED = "cancel_scheduled"
    RESUMED = "resumed"


UNPAID = "Your subscription has an unpaid invoice: pay it, or cancel the subscription, under Manage billing."
STRIPE_UNREACHABLE = "Stripe could not be reached; nothing was changed. Please try again in a minute."


def billing_account_for_user(*, user: User) -> Subscription:
    """The user's billing row with its Stripe customer, created at the first checkout and reused."""
    with transaction.atomic():
        # Lock the user: two checkouts started at once (two tabs) must not create two customers.
        User.objects.select_for_update().only("pk").get(pk=user.pk)
        existing = Subscription.objects.filter(user=user).first()
        if existing is not None:
            return existing
        customer_id = stripe_gateway.customer_create(email=user.email, user_id=user.pk)
        return Subscription.objects.create(user=user, stripe_customer_id=customer_id)


def checkout_start(*, user: User, plan: Plan, success_url: str, cancel_url: str) -> str:
    """The URL of a Stripe Checkout page for a first subscription to `plan`."""
    if not plan.stripe_price_id:
        raise BillingError(f"The {plan.name} plan cannot be bought online.")
    try:
        account = billing_account_for_user(user=user)
        if account.status == Subscription.Status.UNPAID:
            raise BillingError(UNPAID)
        if account.is_live:
            raise BillingError("You already have a subscription: change its plan instead.")
        return stripe_gateway.checkout_session_create(
            customer_id=account.stripe_customer_id,
            price_id=plan.stripe_price_id,
            user_id=user.pk,
            success_url=success_url,
            cancel_url=cancel_url,
        )
    except stripe.StripeError as error:
        logger.warning("checkout for user %s failed at Stripe: %s", user.pk, error)
        raise BillingError(STRIPE_UNREACHABLE) from error


def portal_start(*, user: User, return_url: str) -> str:
    """The URL of the user's own Stripe Customer Portal (cards, invoices, cancellation)."""
    account = subscription_for_user(user=user)
    if account is None:
        raise BillingError("There is nothing to manage yet: choose a plan first.")
    try:
        return stripe_gateway.portal_session_create(customer_id=account.stripe_customer_id, return_url=return_url)
    except stripe.StripeError as error:
        logger.warning("portal for user %s failed at Stripe: %s", user.pk, error)
        raise BillingError(STRIPE_UNREACHABLE) from error


def plan_change(*, user: User, plan: Plan) -> PlanChange:
    """Move a live subscription to `plan`.

    A dearer plan applies at once and the rest of the period is charged prorated; a cheaper one, and
    Free (a cancellation), apply when the paid period ends. Choosing the current plan again drops a
    scheduled downgrade or cancellation.
    """
    subscription = _live_stripe_subscription(user=user)
    current = plan_for_price(price_id=subscription.price_id)
    try:
        if not plan.price_monthly_cents:
            _cancel_at_period_end(subscription)
            return PlanChange.CANCEL_SCHEDULED
        if not plan.stripe_price_id:
            raise BillingError(f"The {plan.name} plan cannot be bought online.")
        if current is not None and plan.pk == current.pk:
            _resume(subscription)
            return PlanChange.RESUMED
        if current is None or plan.price_monthly_cents > current.price_monthly_cents:
            stripe_gateway.subscription_schedule_release(subscription=subscription)
            stripe_gateway.subscription_change_price_now(subscription=subscription, price_id=plan.stripe_price_id)
            return PlanChange.UPGRADED
        if subscription.cancel_at_period_end:
            stripe_gateway.subscription_set_cancel_at_period_end(subscription=subscription, cancel=False)
        stripe_gateway.subscription_change_price_at_period_end(subscription=subscription, price_id=plan.stripe_price_id)
        return PlanChange.DOWNGRADE_SCHEDULED
    except stripe.StripeError as error:
        logger.warning("plan change for user %s failed at Stripe: %s", user.pk, error)
        raise BillingError(STRIPE_UNREACHABLE) from error


def subscription_cancel(*, user: User) -> None:
    """Cancel at the end of the paid period: the plan stays until then."""
    subscription = _live_stripe_subscription(user=user)
    try:
        _cancel_at_period_end(subscription)
    except stripe.StripeError as error:
        raise BillingError(STRIPE_UNREACHABLE) from error


def subscription_resume(*, user: User) -> None:
    """Keep the subscription as it is: drop a scheduled cancellation or downgrade."""
    subscription = _live_stripe_subscription(user=user)
    try:
        _resume(subscription)
    except stripe.StripeError as error:
        raise BillingError(STRIPE_UNREACHABLE) from error


def subscription_cancel_for_deleted_account(*, user: User) -> None:
    """An account being deleted stops paying at once. Raises stripe.StripeError when Stripe cannot
    confirm, so that the deletion fails rather than leave a subscription charging nobody we know."""
    account = subscription_for_user(user=user)
    if account is None or not account.stripe_subscription_id or not account.is_live:
        return
    stripe_gateway.subscription_cancel_now(account.stripe_subscription_id)
    logger.info("cancelled subscription %s of deleted user %s", account.stripe_subscription_id, user.pk)


def _live_stripe_subscription(*, user: User) -> StripeSubscription:
    account = subscription_for_user(user=user)
    if account is not None and account.status == Subscription.Status.UNPAID:
        raise BillingError(UNPAID)
    if account is None or not account.stripe_subscription_id or not account.grants_plan:
        raise BillingError("You have no subscription to change: choose a plan first.")
    try:
        # Stripe's current state, not our copy: a webhook may still be on its way.
        return stripe_gateway.subscription_retrieve(account.stripe_subscription_id)
    except stripe.StripeError as error:
        raise BillingError(STRIPE_UNREACHABLE) from error


def _cancel_at_period_end(subscription: StripeSubscription) -> None:
    # Stripe refuses cancellation changes on a subscription that a schedule manages.
    stripe_gateway.subscription_schedule_release(subscription=subscription)
    stripe_gateway.subscription_set_cancel_at_period_end(subscription=subscription, cancel=True)


def _resume(subscription: StripeSubscription) -> None:
    stripe_gateway.subscription_schedule_release(subscription=subscription)
    if subscription.cancel_at_period_end:
        stripe_gateway.subscription_set_cancel_at_period_end(subscription=subscription, cancel=False)
