"""API keys: only a keyed hash of each key is stored, plus what is needed to recognise it."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def active(self) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    hashed_key = models.CharField(max_length=64, unique=True, help_text="HMAC-SHA256 of the full key.")
    prefix = models.CharField(max_length=20, help_text="The first characters of the key, for display.")
    last_four = models.CharField(max_length=4)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # A deleted key is kept (revoked) so that its usage history still has a name to show.
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at", "-id")
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.masked})"

    @property
    def masked(self) -> str:
        return f"{self.prefix}…{self.last_four}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
