"""Admin pages for backends, routes and usage. Credentials are write-only: shown masked, never in full."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin
from django.db import models
from django.utils import timezone

from gateway.models import ModelRoute, RouteTarget, Upstream, UpstreamCredential, UsageEvent, UsageRollup
from gateway.selectors import usage_top_keys, usage_top_users


class CredentialForm(forms.ModelForm):
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Leave empty to keep the current secret.",
    )

    class Meta:
        model = UpstreamCredential
        fields = ("label", "secret", "enabled", "disabled_reason")

    def clean_secret(self) -> str:
        secret = self.cleaned_data["secret"].strip()
        if secret:
            return secret
        if self.instance.pk:
            return self.instance.secret
        raise forms.ValidationError("A new credential needs its secret.")


class CredentialInline(admin.TabularInline):
    model = UpstreamCredential
    form = CredentialForm
    extra = 0
    readonly_fields = ("masked", "disabled_at", "created_at")
    fields = ("label", "masked", "secret", "enabled", "disabled_reason", "disabled_at", "created_at")


@admin.register(Upstream)
class UpstreamAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "base_url", "enabled", "priority", "weight", "credential_count")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "base_url")
    inlines = (CredentialInline,)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # noqa: RUF012 - Django's admin API

    @admin.display(description="credentials in use")
    def credential_count(self, upstream: Upstream) -> int:
        return sum(credential.enabled for credential in upstream.credentials.all())

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("credentials")


class RouteTargetInline(admin.TabularInline):
    model = RouteTarget
    extra = 0
    autocomplete_fields = ("upstream",)
    fields = ("position", "upstream", "upstream_model")


@admin.register(ModelRoute)
class ModelRouteAdmin(admin.ModelAdmin):
    list_display = ("pattern", "display_name", "listed", "enabled", "target_list")
    list_filter = ("listed", "enabled")
    search_fields = ("pattern", "display_name")
    inlines = (RouteTargetInline,)

    @admin.display(description="targets")
    def target_list(self, route: ModelRoute) -> str:
        return ", ".join(target.upstream.name for target in route.targets.all()) or "(falls through)"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("targets__upstream")


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
