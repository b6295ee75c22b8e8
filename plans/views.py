"""The plan and billing page of the dashboard, and the two buttons that lead to Stripe."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from plans.billing import billing_is_configured
from plans.selectors import plan_for_user, plan_list_public

BILLING_UNAVAILABLE = "Online payment is not available on this deployment yet; your plan is unchanged."


@require_GET
@login_required
def plan_page(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "plans/plan.html",
        {
            "plan": plan_for_user(user=request.user),
            "plans": plan_list_public(),
            "billing_configured": billing_is_configured(),
        },
    )


@require_POST
@login_required
def checkout(request: HttpRequest, slug: str) -> HttpResponse:
    """Upgrade to a plan through Stripe Checkout. Until billing is connected, says so and changes nothing."""
    if not plan_list_public().filter(slug=slug).exists():
        raise Http404("No such plan")
    messages.error(request, BILLING_UNAVAILABLE)
    return redirect("plans:plan")


@require_POST
@login_required
def billing_portal(request: HttpRequest) -> HttpResponse:
    """Card changes and cancellation in Stripe's Customer Portal. Until billing is connected, says so."""
    messages.error(request, BILLING_UNAVAILABLE)
    return redirect("plans:plan")
