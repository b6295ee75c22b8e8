"""The admin's usage pages: raw events, rollups with the month's top users and keys. Read-only."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.utils import timezone

from gateway.usage.models import RefusalRollup, UsageDeadLetter, UsageEvent, UsageRollup
from gateway.usage.selectors import usage_top_keys, usage_top_users


class ReadOnlyAdmin(admin.ModelAdmin):
    """Usage is written by the pipeline only."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "user",
        "api_key",
        "requested_model",
        "upstream",
        "status",
        "stream",
        "input_tokens",
        "output_tokens",
        "duration_ms",
    )
    list_filter = ("status", "stream", "upstream", "requested_model")
    search_fields = ("request_id", "user__email", "api_key__name")
    list_select_related = ("user", "api_key")
    date_hierarchy = "created_at"


@admin.register(UsageRollup)
class UsageRollupAdmin(ReadOnlyAdmin):
    list_display = ("period_start", "granularity", "user", "api_key", "model", "requests", "errors", "input_tokens")
    list_filter = ("granularity", "model")
    search_fields = ("user__email", "api_key__name")
    list_select_related = ("user", "api_key")
    date_hierarchy = "period_start"

    def changelist_view(self, request, extra_context=None):
        since = timezone.now() - timedelta(days=30)
        extra_context = {
            **(extra_context or {}),
            "top_users": usage_top_users(since=since),
            "top_keys": usage_top_keys(since=since),
        }
        return super().changelist_view(request, extra_context=extra_context)


@admin.register(UsageDeadLetter)
class UsageDeadLetterAdmin(ReadOnlyAdmin):
    """Records the pipeline could not store even cleaned, with their payload as it came."""

    list_display = ("created_at", "reason", "short_payload")
    search_fields = ("reason",)
    date_hierarchy = "created_at"
    fields = ("created_at", "reason", "payload_preview")
    readonly_fields = fields

    @admin.display(description="payload")
    def short_payload(self, letter: UsageDeadLetter) -> str:
        return letter.payload_preview[:120]


@admin.register(RefusalRollup)
class RefusalRollupAdmin(ReadOnlyAdmin):
    """Answers of our own (401, 404, 429...) per hour: counted, not recorded one by one."""

    list_display = ("period_start", "status", "user", "api_key", "model", "count")
    list_filter = ("status",)
    search_fields = ("user__email", "api_key__name", "model")
    list_select_related = ("user", "api_key")
    date_hierarchy = "period_start"
