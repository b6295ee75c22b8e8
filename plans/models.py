"""Plans: the request limits, price and key allowance an account gets."""

from __future__ import annotations

from django.db import models


class Plan(models.Model):
    slug = models.SlugField(unique=True, help_text="Stable identifier, e.g. `pro`; used by commands and Stripe.")
    name = models.CharField(max_length=50)
    description = models.CharField(max_length=200, blank=True)
    requests_per_minute = models.PositiveIntegerField()
    requests_per_5_hours = models.PositiveIntegerField()
    requests_per_week = models.PositiveIntegerField()
    monthly_token_quota = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Tokens per month; empty means unlimited."
    )
    price_monthly_cents = models.PositiveIntegerField(default=0, help_text="Price per month in US cents.")
    stripe_price_id = models.CharField(max_length=100, blank=True, help_text="Stripe Price for the subscription.")
    max_keys = models.PositiveIntegerField(help_text="The most API keys an account on this plan may hold.")
    concurrent_requests_per_key = models.PositiveIntegerField(
        default=8,
        help_text="Requests one key may have in flight at once (Claude Code runs subagents in parallel).",
    )
    display_order = models.PositiveSmallIntegerField(default=0)
    is_public = models.BooleanField(default=True, help_text="Shown on the pricing table.")
    is_default = models.BooleanField(default=False, help_text="The plan a new account gets.")

    class Meta:
        ordering = ("display_order", "id")
        constraints = (
            models.UniqueConstraint(
                fields=("is_default",), condition=models.Q(is_default=True), name="plans_plan_one_default"
            ),
        )

    def __str__(self) -> str:
        return self.name

    @property
    def price_monthly_dollars(self) -> str:
        dollars, cents = divmod(self.price_monthly_cents, 100)
        return f"{dollars}" if cents == 0 else f"{dollars}.{cents:02d}"

    @property
    def has_unlimited_tokens(self) -> bool:
        return self.monthly_token_quota is None
