"""Whether this deployment can take payments: Stripe is configured by its secret key (settings.STRIPE_SECRET_KEY)."""

from __future__ import annotations

from django.conf import settings


def billing_is_configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)
