"""The usage tables: raw events (kept a while) and hourly/daily rollups (kept forever)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class UsageEvent(models.Model):
    """One /v1/messages request, as the gateway recorded it. Raw rows are kept for a while."""

    request_id = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(db_index=True, help_text="When the response ended.")
    api_key = models.ForeignKey("keys.ApiKey", on_delete=models.CASCADE, related_name="usage_events")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_events")
    requested_model = models.CharField(max_length=200)
    upstream = models.CharField(max_length=100, blank=True)
    upstream_model = models.CharField(max_length=200, blank=True)
    status = models.PositiveSmallIntegerField()
    stream = models.BooleanField()
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cache_creation_input_tokens = models.PositiveBigIntegerField(default=0)
    cache_read_input_tokens = models.PositiveBigIntegerField(default=0)
    time_to_first_token_ms = models.FloatField(null=True, blank=True)
    duration_ms = models.FloatField()
    client_disconnected = models.BooleanField(default=False)
    error_type = models.CharField(max_length=50, blank=True)

    class Meta:
        ordering = ("-created_at",)
        indexes = (models.Index(fields=("user", "created_at")),)

    def __str__(self) -> str:
        return self.request_id

    @property
    def is_error(self) -> bool:
        return self.status >= 400 or bool(self.error_type)


class Granularity(models.TextChoices):
    HOUR = "hour", "Hour"
    DAY = "day", "Day"


class UsageRollup(models.Model):
    """Sums of usage per hour or day, per key and requested model. Kept forever."""

    granularity = models.CharField(max_length=4, choices=Granularity.choices)
    period_start = models.DateTimeField()
    api_key = models.ForeignKey("keys.ApiKey", on_delete=models.CASCADE, related_name="usage_rollups")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_rollups")
    model = models.CharField(max_length=200)
    requests = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cache_creation_input_tokens = models.PositiveBigIntegerField(default=0)
    cache_read_input_tokens = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ("-period_start",)
        constraints = (
            models.UniqueConstraint(
                fields=("granularity", "period_start", "api_key", "model"), name="gateway_rollup_unique"
            ),
        )
        indexes = (models.Index(fields=("user", "granularity", "period_start")),)

    def __str__(self) -> str:
        return f"{self.granularity} {self.period_start:%Y-%m-%d %H:00} {self.model}"


class UsageDeadLetter(models.Model):
    """A usage record that could not be stored even cleaned: kept as it came, for a person to look at."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    reason = models.CharField(max_length=200)
    payload = models.BinaryField(help_text="The record as it came (bytes: it may hold what text columns refuse).")

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.reason}"

    @property
    def payload_preview(self) -> str:
        """The payload, readable whatever bytes it holds (control characters escaped)."""
        text = bytes(self.payload[:2000]).decode("utf-8", "backslashreplace")
        return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


class RefusalRollup(models.Model):
    """Answers of our own (401, 404, 429, 503...) per hour, key, model and status: counted, not recorded."""

    period_start = models.DateTimeField()
    api_key = models.ForeignKey(
        "keys.ApiKey", on_delete=models.CASCADE, null=True, blank=True, related_name="refusal_rollups"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="refusal_rollups"
    )
    model = models.CharField(max_length=200, blank=True)
    status = models.PositiveSmallIntegerField()
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ("-period_start",)
        constraints = (
            models.UniqueConstraint(
                fields=("period_start", "api_key", "model", "status"),
                name="gateway_refusal_rollup_unique",
                nulls_distinct=False,  # refused keys (401) have no key: their counts still share a row
            ),
        )
        indexes = (models.Index(fields=("user", "period_start")),)

    def __str__(self) -> str:
        return f"{self.period_start:%Y-%m-%d %H:00} {self.status} {self.model}"


class UsageStart(models.Model):
    """A request admitted but not finished yet, as the usage drain last heard (gateway/usage/record.py
    AdmissionStart). Its record deletes it; one still here after USAGE_INTERRUPTED_AFTER_SECONDS is
    stored as an interrupted event and marked, in case its record comes after all. No foreign
    keys: the row only waits, the event is checked."""

    request_id = models.CharField(max_length=64, primary_key=True)
    api_key_id = models.BigIntegerField()
    user_id = models.BigIntegerField()
    started_at = models.DateTimeField(db_index=True)
    interrupted_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was stored as interrupted (kept a day for a late record)."
    )

    def __str__(self) -> str:
        return self.request_id
