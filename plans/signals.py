"""A change to a plan's limits reaches every gateway process's cache; a deleted account stops paying."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save, pre_delete
from django.dispatch import receiver

from accounts.models import User
from llmapi.invalidation import publish
from plans.models import Plan


@receiver(post_save, sender=Plan, dispatch_uid="plans_plan_saved")
@receiver(post_delete, sender=Plan, dispatch_uid="plans_plan_deleted")
def plan_changed(sender: type[Plan], **kwargs: object) -> None:
    publish("plans")


@receiver(pre_delete, sender=User, dispatch_uid="plans_user_deleting")
def user_deleting(sender: type[User], instance: User, **kwargs: object) -> None:
    # Imported here: the services load the `stripe` library, which a gateway process never needs at start.
    from plans.services import subscription_cancel_for_deleted_account

    # Before the rows go: a Stripe error here stops the deletion instead of leaving a charging orphan.
    subscription_cancel_for_deleted_account(user=instance)
