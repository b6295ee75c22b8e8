"""Any change to backends or routes reaches every gateway process's route table."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from gateway.models import ModelRoute, RouteTarget, Upstream, UpstreamCredential
from llmapi.invalidation import publish

ROUTING_MODELS = (Upstream, UpstreamCredential, ModelRoute, RouteTarget)


def routing_changed(sender: type, **kwargs: object) -> None:
    publish("routes")


for model in ROUTING_MODELS:
    receiver(post_save, sender=model, dispatch_uid=f"routes_saved_{model.__name__}")(routing_changed)
    receiver(post_delete, sender=model, dispatch_uid=f"routes_deleted_{model.__name__}")(routing_changed)
