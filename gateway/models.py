"""Backends (upstreams with their credentials) and the routes from model names to them.

The usage models live in gateway/usage/models.py; importing them here registers them with this app.
"""

from __future__ import annotations

import fnmatch
import re
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import models

import gateway.usage.models  # noqa: F401 - registers the usage models with this app
from gateway.credential_encryption import EncryptedTextField


class UpstreamKind(models.TextChoices):
    ANTHROPIC = "anthropic", "Anthropic Messages API"
    BEDROCK = "bedrock", "AWS Bedrock"
    VERTEX = "vertex", "Google Vertex AI"


# Backends of one family can verify each other's thinking-block signatures: a thinking block
# signed by one provider is not taken across to another mid-session.
FAMILY_OF_KIND = {UpstreamKind.ANTHROPIC: "anthropic", UpstreamKind.BEDROCK: "bedrock", UpstreamKind.VERTEX: "vertex"}


AWS_HOST = re.compile(r"^bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com$")


def aws_region_of(base_url: str) -> str:
    """The region of a Bedrock runtime URL (bedrock-runtime.REGION.amazonaws.com), or ""."""
    match = AWS_HOST.match(urlsplit(base_url).hostname or "")
    return match.group(1) if match else ""


class Upstream(models.Model):
    name = models.SlugField(unique=True)
    kind = models.CharField(max_length=20, choices=UpstreamKind.choices, default=UpstreamKind.ANTHROPIC)
    base_url = models.URLField(
        help_text="e.g. https://api.anthropic.com (no /v1), https://bedrock-runtime.us-east-1.amazonaws.com"
    )
    region = models.CharField(
        max_length=40,
        blank=True,
        help_text="Bedrock: the AWS region (empty: the base URL's). Vertex: the location, e.g. us-east5.",
    )
    project = models.CharField(
        max_length=100, blank=True, help_text="Vertex: the Google Cloud project; empty means the service account's."
    )
    extra_headers = models.JSONField(default=dict, blank=True, help_text="Headers added to every request.")
    connect_timeout = models.FloatField(default=10.0, help_text="Seconds to open a connection.")
    read_timeout = models.FloatField(default=600.0, help_text="Seconds of silence before giving up on a read.")
    enabled = models.BooleanField(default=True)
    priority = models.PositiveSmallIntegerField(default=100, help_text="Lower is tried first.")
    weight = models.PositiveSmallIntegerField(default=1, help_text="Share of traffic among equal priorities.")

    class Meta:
        ordering = ("priority", "name")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not isinstance(self.extra_headers, dict) or not all(
            isinstance(name, str) and isinstance(value, str) for name, value in self.extra_headers.items()
        ):
            raise ValidationError({"extra_headers": "Give an object of header names to string values."})
        if self.kind == UpstreamKind.BEDROCK and not self.region and not aws_region_of(self.base_url):
            raise ValidationError({"region": "Name the AWS region: the base URL's host does not."})
        if self.kind == UpstreamKind.VERTEX and not self.region:
            raise ValidationError({"region": "Name the Vertex AI location (us-east5, europe-west1, global...)."})

    @property
    def family(self) -> str:
        return FAMILY_OF_KIND[self.kind]


class UpstreamCredential(models.Model):
    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="credentials")
    label = models.CharField(max_length=100, blank=True)
    secret = EncryptedTextField(help_text="Stored encrypted with UPSTREAM_SECRET_KEYS.")
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True, help_text="When the gateway took it out of service.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("upstream", "id")

    def __str__(self) -> str:
        return f"{self.upstream.name}: {self.label or self.masked}"

    @property
    def masked(self) -> str:
        return f"…{self.secret[-4:]}" if len(self.secret) > 12 else "…"


class ModelRoute(models.Model):
    pattern = models.CharField(
        max_length=200, unique=True, help_text="An exact model name, or a glob such as claude-sonnet-4-*."
    )
    display_name = models.CharField(max_length=200, blank=True)
    listed = models.BooleanField(default=False, help_text="Shown by GET /v1/models (exact names only).")
    released_at = models.DateTimeField(null=True, blank=True, help_text="created_at in /v1/models.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("pattern",)

    def __str__(self) -> str:
        return self.pattern

    @property
    def is_glob(self) -> bool:
        return any(char in self.pattern for char in "*?[")

    def clean(self) -> None:
        if self.listed and self.is_glob:
            raise ValidationError({"listed": "Only an exact model name can be listed."})

    def matches(self, model: str) -> bool:
        return fnmatch.fnmatchcase(model, self.pattern) if self.is_glob else model == self.pattern


class RouteTarget(models.Model):
    route = models.ForeignKey(ModelRoute, on_delete=models.CASCADE, related_name="targets")
    upstream = models.ForeignKey(Upstream, on_delete=models.CASCADE, related_name="targets")
    upstream_model = models.CharField(
        max_length=200, blank=True, help_text="The model name the upstream gets; empty means the same."
    )
    position = models.PositiveSmallIntegerField(default=0, help_text="Lower is tried first.")

    class Meta:
        ordering = ("route", "position", "id")
        constraints = (
            models.UniqueConstraint(fields=("route", "upstream", "upstream_model"), name="gateway_target_unique"),
        )

    def __str__(self) -> str:
        return f"{self.route.pattern} -> {self.upstream.name}:{self.upstream_model or '(same)'}"
