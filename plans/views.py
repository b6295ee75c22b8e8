"""The plan and billing pages of the dashboard, the buttons that lead to Stripe, and Stripe's webhook."""

from __future__ import annotations

import logging
from collections.abc import Callable

import stripe
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from plans import stripe_gateway
from plans.billing import billing_is_configured
from plans.selectors import plan_for_user, plan_list_public, subscription_for_user
from plans.services import (
    BillingError,
    PlanChange,
    checkout_start,
    plan_change,
    portal_start,
    subscription_cancel,
    subscription_resume,
)
from plans.webhooks import MalformedEventError, event_target, stripe_event_handle

logger = logging.getLogger(__name__)

BILLING_UNAVAILABLE = "Online payment is not available on this deployment yet; your plan is unchanged."
PLAN_CHANGE_MESSAGES = {
    PlanChange.UPGRADED: "Upgraded: the difference for this period is charged now, and the new limits apply "
    "as soon as Stripe confirms the payment.",
    PlanChange.DOWNGRADE_SCHEDULED: "Your plan changes at the end of the paid period; until then nothing changes.",
    PlanChange.CANCEL_SCHEDULED: "Your subscription ends at the end of the paid period; until then nothing changes.",
    PlanChange.RESUMED: "Your subscription goes on as it is.",
}


@require_GET
@login_required
def plan_page(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "plans/plan.html",
        {
            "plan": plan_for_user(user=request.user),
            "plans": plan_list_public(),
            "subscription": subscription_for_user(user=request.user),
            "billing_configured": billing_is_configured(),
        },
    )


def _absolute(request: HttpRequest, name: str) -> str:
    return request.build_absolute_uri(reverse(name))


@require_POST
@login_required
def checkout(request: HttpRequest, slug: str) -> HttpResponse:
    """Choose a plan: a first subscription goes through Stripe Checkout, a live one changes its plan."""
    plan = get_object_or_404(plan_list_public(), slug=slug)
    if not billing_is_configured():
        messages.error(request, BILLING_UNAVAILABLE)
        return redirect("plans:plan")
    subscription = subscription_for_user(user=request.user)
    try:
        if subscription is not None and subscription.grants_plan:
            messages.success(request, PLAN_CHANGE_MESSAGES[plan_change(user=request.user, plan=plan)])
            return redirect("plans:plan")
        if not plan.price_monthly_cents:
            raise BillingError(f"You are on the {plan.name} plan already.")
        url = checkout_start(
            user=request.user,
            plan=plan,
            success_url=_absolute(request, "plans:checkout_success"),
            cancel_url=_absolute(request, "plans:checkout_cancel"),
        )
    except BillingError as error:
        messages.error(request, str(error))
        return redirect("plans:plan")
    return redirect(url)


@require_GET
@login_required
def checkout_success(request: HttpRequest) -> HttpResponse:
    """Where Checkout returns after payment. Stripe's webhook may land a moment later: the page waits for it."""
    return render(request, "plans/checkout_success.html", _status_context(request))


@require_GET
@login_required
def checkout_status(request: HttpRequest) -> HttpResponse:
    """The success page's status line alone; htmx asks again every second until the plan is confirmed."""
    return render(request, "plans/_checkout_status.html", _status_context(request))


def _status_context(request: HttpRequest) -> dict[str, object]:
    subscription = subscription_for_user(user=request.user)
    return {"subscription": subscription, "confirmed": subscription is not None and subscription.grants_plan}


@require_GET
@login_required
def checkout_cancel(request: HttpRequest) -> HttpResponse:
    return render(request, "plans/checkout_cancel.html")


@require_POST
@login_required
def billing_portal(request: HttpRequest) -> HttpResponse:
    """Cards, invoices and cancellation in the user's own Stripe Customer Portal."""
    if not billing_is_configured():
        messages.error(request, BILLING_UNAVAILABLE)
        return redirect("plans:plan")
    try:
        return redirect(portal_start(user=request.user, return_url=_absolute(request, "plans:plan")))
    except BillingError as error:
        messages.error(request, str(error))
        return redirect("plans:plan")


@require_POST
@login_required
def cancel(request: HttpRequest) -> HttpResponse:
    return _subscription_action(request, subscription_cancel, PLAN_CHANGE_MESSAGES[PlanChange.CANCEL_SCHEDULED])


@require_POST
@login_required
def resume(request: HttpRequest) -> HttpResponse:
    return _subscription_action(request, subscription_resume, PLAN_CHANGE_MESSAGES[PlanChange.RESUMED])


def _subscription_action(request: HttpRequest, action: Callable[..., None], done: str) -> HttpResponse:
    if not billing_is_configured():
        messages.error(request, BILLING_UNAVAILABLE)
        return redirect("plans:plan")
    try:
        action(user=request.user)
    except BillingError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, done)
    return redirect("plans:plan")


@require_GET
@login_required
def invoices(request: HttpRequest) -> HttpResponse:
    """The user's invoices as Stripe lists them, each with its hosted page."""
    subscription = subscription_for_user(user=request.user)
    found: list[stripe_gateway.StripeInvoice] = []
    unavailable = False
    if subscription is not None and billing_is_configured():
        try:
            found = stripe_gateway.invoice_list(customer_id=subscription.stripe_customer_id)
        except stripe.StripeError as error:
            logger.warning("invoices of user %s could not be read: %s", request.user.pk, error)
            unavailable = True
    return render(request, "plans/invoices.html", {"invoices": found, "unavailable": unavailable})


@csrf_exempt  # Stripe signs its deliveries instead; the signature is checked first.
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Stripe's events. Never a 500: Stripe would retry a failing delivery for days.

    400: bad signature or not an event. 200: handled, a duplicate, an event we do not use, or a
    customer we do not know (logged). 503: Stripe could not be asked about the subscription; nothing
    was recorded, and Stripe's retry is handled in full. Billing off: 404, as if not here.
    """
    if not billing_is_configured():
        raise Http404("Billing is not configured")
    try:
        event = stripe_gateway.webhook_event(
            payload=request.body, signature=request.headers.get("Stripe-Signature", "")
        )
    except stripe.SignatureVerificationError:
        return _plain("Bad signature.", status=400)
    except ValueError:
        return _plain("Not a Stripe event.", status=400)
    try:
        outcome = stripe_event_handle(target=event_target(event))
    except MalformedEventError:
        return _plain("Not a Stripe event.", status=400)
    except stripe.StripeError as error:
        logger.warning("Stripe event %s not handled, Stripe unreachable: %s", event.get("id"), error)
        return _plain("Stripe could not be reached; send it again later.", status=503)
    return _plain(f"{outcome}.", status=200)


def _plain(text: str, *, status: int) -> HttpResponse:
    return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")
