"""`manage.py stripe_plans`: create or check the Stripe product and monthly price of each paid plan."""

from __future__ import annotations

from typing import Any

import stripe
from django.core.management.base import BaseCommand, CommandError, CommandParser

from plans import stripe_gateway
from plans.billing import billing_is_configured
from plans.models import Plan


class Command(BaseCommand):
    help = (
        "Make sure each paid plan has a Stripe product (id llmapi-<slug>) and an active monthly price at its "
        "price (lookup key llmapi-<slug>-monthly), and store the price id on the plan. Safe to run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check", action="store_true", help="only report; change nothing at Stripe or here")

    def handle(self, *args: Any, check: bool, **options: Any) -> None:
        if not billing_is_configured():
            raise CommandError("Billing is not configured: set STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET.")
        try:
            problems = sum(self.plan_checked(plan) if check else self.plan_synced(plan) for plan in _paid_plans())
        except stripe.StripeError as error:
            raise CommandError(f"Stripe refused: {error}") from error
        if problems:
            raise CommandError(f"{problems} plan(s) not ready for sale; run without --check to fix.")

    def plan_synced(self, plan: Plan) -> int:
        product_id = f"llmapi-{plan.slug}"
        created_product = stripe_gateway.product_ensure(
            product_id=product_id, name=plan.name, description=plan.description
        )
        price_id, created_price = stripe_gateway.monthly_price_ensure(
            product_id=product_id, lookup_key=f"llmapi-{plan.slug}-monthly", amount_cents=plan.price_monthly_cents
        )
        if plan.stripe_price_id != price_id:
            plan.stripe_price_id = price_id
            plan.save(update_fields=["stripe_price_id"])
        made = [what for what, done in (("product", created_product), ("price", created_price)) if done]
        self.stdout.write(f"{plan.slug}: {price_id}" + (f" (created {' and '.join(made)})" if made else " (ok)"))
        return 0

    def plan_checked(self, plan: Plan) -> int:
        found = stripe_gateway.price_describe(plan.stripe_price_id) if plan.stripe_price_id else None
        if found is None:
            self.stdout.write(f"{plan.slug}: no Stripe price")
            return 1
        amount, active = found
        if not active or amount != plan.price_monthly_cents:
            state = "active" if active else "inactive"
            self.stdout.write(f"{plan.slug}: {plan.stripe_price_id} is {state} at {amount} cents")
            return 1
        self.stdout.write(f"{plan.slug}: {plan.stripe_price_id} (ok)")
        return 0


def _paid_plans() -> list[Plan]:
    return list(Plan.objects.filter(price_monthly_cents__gt=0).order_by("display_order", "id"))
