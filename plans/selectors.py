"""Reads of plans."""

from __future__ import annotations

from django.db.models import QuerySet

from plans.models import Plan


def plan_list_public() -> QuerySet[Plan]:
    return Plan.objects.filter(is_public=True).order_by("display_order", "id")


def plan_get_default() -> Plan:
    return Plan.objects.get(is_default=True)
