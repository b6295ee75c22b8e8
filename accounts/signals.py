"""A change to a user (disabled, plan changed) reaches every gateway process's cache."""

from __future__ import annotations

from django.db.models.signals import post_save
from django.dispatch import receiver

from accounts.models import User
from llmapi.invalidation import publish


@receiver(post_save, sender=User, dispatch_uid="accounts_user_changed")
def user_changed(sender: type[User], instance: User, created: bool, **kwargs: object) -> None:
    if not created:
        publish(f"user:{instance.pk}")
