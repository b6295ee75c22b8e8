"""Reads for the public pages."""

from __future__ import annotations

from django.db.models import F, QuerySet

from gateway.models import ModelRoute


def listed_model_list() -> QuerySet[ModelRoute]:
    """The model names this deployment lists (GET /v1/models shows the same), newest first.

    A model without a release date is one added after the catalogue was dated, so it counts as newest.
    """
    return ModelRoute.objects.filter(listed=True, enabled=True).order_by(
        F("released_at").desc(nulls_first=True), "pattern"
    )
