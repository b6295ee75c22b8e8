"""Lets the site's forms lead to Stripe's hosted pages (Checkout, the Customer Portal).

The Content-Security-Policy allows forms to submit to the site only (`form-action 'self'`), and
browsers apply that to where a form's answer redirects as well: the upgrade and "manage billing"
buttons POST to us and we redirect to Stripe. While billing is on, every page (the past-due
banner has such a form) also allows Stripe's page origins, and the stand-in's when
STRIPE_API_BASE points at one.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from plans.billing import billing_is_configured

STRIPE_PAGE_ORIGINS = ("https://checkout.stripe.com", "https://billing.stripe.com")


def stripe_page_origins() -> list[str]:
    origins = list(STRIPE_PAGE_ORIGINS)
    if settings.STRIPE_API_BASE:
        parts = urlsplit(settings.STRIPE_API_BASE)
        origins.append(f"{parts.scheme}://{parts.netloc}")
    return origins


class StripePagesMiddleware:
    """Placed after django-csp's middleware, so that its answer passes here first."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if billing_is_configured():
            response._csp_update = {"form-action": stripe_page_origins()}  # read by django-csp
        return response
