"""Admin pages for backends and routes (usage: gateway/usage/admin.py). Credentials are write-only: shown masked."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db import models

from gateway.credential_health import credential_subject, describe, read_reports, upstream_subject
from gateway.models import ModelRoute, RouteTarget, Upstream, UpstreamCredential
from gateway.usage import admin as usage_admin  # noqa: F401 - registers the usage pages


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
    readonly_fields = ("masked", "health", "disabled_at", "created_at")
    fields = ("label", "masked", "secret", "enabled", "health", "disabled_reason", "disabled_at", "created_at")

    @admin.display(description="last seen by the gateway")
    def health(self, credential: UpstreamCredential) -> str:
        """Resting (why, until when) or back in service, as the gateway's processes last reported it."""
        if credential.pk is None:
            return "-"
        subject = credential_subject(credential.pk)
        return describe(read_reports([subject]).get(subject))


@admin.register(Upstream)
class UpstreamAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "base_url", "enabled", "priority", "weight", "credential_count")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "base_url")
    inlines = (CredentialInline,)
    readonly_fields = ("circuit",)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # noqa: RUF012 - Django's admin API

    @admin.display(description="circuit")
    def circuit(self, upstream: Upstream) -> str:
        """Open (after which failures, until when) or closed again, as the gateway last reported it."""
        if upstream.pk is None:
            return "-"
        subject = upstream_subject(upstream.pk)
        return describe(read_reports([subject]).get(subject))

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
