"""Whether this deployment can take payments: Stripe's secret key and the webhook secret are both set."""

from __future__ import annotations

from django.conf import settings


def billing_is_configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY and settings.STRIPE_WEBHOOK_SECRET)
