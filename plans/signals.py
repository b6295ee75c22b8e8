"""A change to a plan's limits reaches every gateway process's cache."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from llmapi.invalidation import publish
from plans.models import Plan


@receiver(post_save, sender=Plan, dispatch_uid="plans_plan_saved")
@receiver(post_delete, sender=Plan, dispatch_uid="plans_plan_deleted")
def plan_changed(sender: type[Plan], **kwargs: object) -> None:
    publish("plans")
