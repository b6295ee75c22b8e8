from __future__ import annotations

from django.contrib import admin

from plans.models import Plan


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
                )
            },
        ),
        ("Billing", {"fields": ("price_monthly_cents", "stripe_price_id")}),
    )
