"""A change to a user (disabled, plan changed, deleted) reaches every gateway process's cache."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.models import User
from llmapi.invalidation import publish


@receiver(post_save, sender=User, dispatch_uid="accounts_user_changed")
def user_changed(sender: type[User], instance: User, created: bool, **kwargs: object) -> None:
    if not created:
        publish(f"user:{instance.pk}")


@receiver(post_delete, sender=User, dispatch_uid="accounts_user_deleted")
def user_deleted(sender: type[User], instance: User, **kwargs: object) -> None:
    # QuerySet.delete() (the admin's bulk action too) sends this for every row, cascades included.
    publish(f"user:{instance.pk}")
