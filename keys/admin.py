from __future__ import annotations

from django.contrib import admin

from keys.models import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "masked", "user", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "user__email", "prefix")
    list_select_related = ("user",)
    # Keys are created by their owners (the full key is shown to them once); the admin only reads.
    readonly_fields = ("user", "name", "masked", "created_at", "last_used_at", "revoked_at")
    exclude = ("hashed_key", "prefix", "last_four")

    def has_add_permission(self, request) -> bool:
        return False
