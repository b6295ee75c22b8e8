"""Plans: the request limits, price and key allowance an account gets."""

from __future__ import annotations

from django.core.validators import MinValueValidator
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
    input_tokens_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Input tokens one key may send per minute (cache reads are free); empty means no limit.",
    )
    output_tokens_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Output tokens one key may receive per minute; empty means no limit.",
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


class Subscription(models.Model):
    """A user's Stripe customer and subscription, as the last webhook found them at Stripe.

    One row per user, created with the Stripe customer at the first checkout; webhooks are the only
    writer of its subscription fields (plans/webhooks.py).
    """

    class Status(models.TextChoices):
        NONE = "", "No subscription"
        INCOMPLETE = "incomplete", "Incomplete"
        INCOMPLETE_EXPIRED = "incomplete_expired", "Incomplete, expired"
        TRIALING = "trialing", "Trialing"
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Past due"
        CANCELED = "canceled", "Canceled"
        UNPAID = "unpaid", "Unpaid"
        PAUSED = "paused", "Paused"

    # Stripe keeps retrying a past_due invoice: the customer keeps the plan meanwhile.
    ENTITLED_STATUSES = frozenset({Status.TRIALING, Status.ACTIVE, Status.PAST_DUE})

    user = models.OneToOneField("accounts.User", on_delete=models.CASCADE, related_name="subscription")
    stripe_customer_id = models.CharField(max_length=255, unique=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True, db_index=True)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, null=True, blank=True, related_name="subscriptions")
    status = models.CharField(max_length=32, choices=Status.choices, blank=True)
    started_at = models.DateTimeField(null=True, blank=True, help_text="When Stripe created the subscription.")
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    scheduled_plan = models.ForeignKey(
        Plan, on_delete=models.PROTECT, null=True, blank=True, related_name="+", help_text="A downgrade Stripe applies."
    )
    scheduled_change_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user} {self.plan or '-'} {self.status or 'none'}"

    @property
    def grants_plan(self) -> bool:
        return self.plan_id is not None and self.status in self.ENTITLED_STATUSES

    @property
    def is_live(self) -> bool:
        """A subscription that a checkout must not duplicate: changes go through it instead."""
        return self.status in self.ENTITLED_STATUSES or self.status in {self.Status.INCOMPLETE, self.Status.UNPAID}

    @property
    def is_past_due(self) -> bool:
        return self.status == self.Status.PAST_DUE


class StripeEvent(models.Model):
    """A Stripe event already handled: a redelivery of its id changes nothing."""

    id = models.CharField(max_length=255, primary_key=True)
    type = models.CharField(max_length=100)
    received_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.id} {self.type}"
