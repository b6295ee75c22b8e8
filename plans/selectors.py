"""Reads of plans."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet

from plans.models import Plan

if TYPE_CHECKING:
    from accounts.models import User


def plan_list_public() -> QuerySet[Plan]:
    return Plan.objects.filter(is_public=True).order_by("display_order", "id")


def plan_get_default() -> Plan:
    return Plan.objects.get(is_default=True)


def plan_for_user(*, user: User) -> Plan:
    """The user's plan; an account that never chose one is on the default plan."""
    return user.plan if user.plan_id else plan_get_default()
