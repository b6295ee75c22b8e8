"""A deleted key row (directly, or with its user) reaches every gateway process's cache.

Revoking a key (keys/services.py) publishes too; this covers deletes, which bypass the services:
the admin, a user's deletion cascading to their keys, QuerySet.delete().
"""

from __future__ import annotations

from django.db.models.signals import post_delete
from django.dispatch import receiver

from keys.models import ApiKey
from llmapi.invalidation import publish


@receiver(post_delete, sender=ApiKey, dispatch_uid="keys_api_key_deleted")
def api_key_deleted(sender: type[ApiKey], instance: ApiKey, **kwargs: object) -> None:
    publish(f"key:{instance.hashed_key}")
