from __future__ import annotations

from django.contrib import admin

from plans.models import Plan, StripeEvent, Subscription


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "slug",
        "requests_per_minute",
        "requests_per_5_hours",
        "requests_per_week",
        "price_monthly_cents",
        "max_keys",
        "concurrent_requests_per_key",
        "display_order",
        "is_public",
        "is_default",
    )
    list_editable = ("display_order", "is_public")
    prepopulated_fields = {"slug": ("name",)}  # noqa: RUF012 - Django's admin API
    fieldsets = (
        (None, {"fields": ("name", "slug", "description", "display_order", "is_public", "is_default")}),
        (
            "Limits",
            {
                "fields": (
                    "requests_per_minute",
                    "requests_per_5_hours",
                    "requests_per_week",
                    "monthly_token_quota",
                    "max_keys",
                    "concurrent_requests_per_key",
                    "input_tokens_per_minute",
                    "output_tokens_per_minute",
                )
            },
        ),
        ("Billing", {"fields": ("price_monthly_cents", "stripe_price_id")}),
    )


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    """Read only: Stripe's webhooks write these rows. To give an account a plan, set it on the user."""

    list_display = ("user", "plan", "status", "current_period_end", "cancel_at_period_end", "scheduled_plan")
    list_filter = ("status", "plan", "cancel_at_period_end")
    search_fields = ("user__email", "stripe_customer_id", "stripe_subscription_id")

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(StripeEvent)
class StripeEventAdmin(admin.ModelAdmin):
    list_display = ("id", "type", "received_at")
    list_filter = ("type",)
    search_fields = ("id",)

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False
