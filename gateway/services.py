"""Changes to backends and routes, shared by the admin, the commands and the gateway (usage: gateway/usage/)."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from gateway.cache import in_database_thread
from gateway.models import ModelRoute, RouteTarget, Upstream, UpstreamCredential, UpstreamKind
from llmapi.invalidation import publish

logger = logging.getLogger(__name__)

EVERY_CLAUDE_MODEL = "claude-*"


@transaction.atomic
def upstream_add(
    *,
    name: str,
    kind: str = UpstreamKind.ANTHROPIC,
    base_url: str,
    credentials: list[str],
    model_globs: list[str] | None = None,
    region: str = "",
    project: str = "",
) -> Upstream:
    """Create or update an upstream, add its credentials, and route the given models to it.

    Each model glob gets a route if it has none; the upstream becomes that route's last target,
    so a second upstream added for the same models is its fallback. `NAME=ID` routes the model
    NAME to the upstream's own id for it (a Bedrock model id, say). Raises ValidationError for
    an upstream that could not serve (a Bedrock or Vertex one with no region).
    """
    upstream = Upstream.objects.filter(name=name).first() or Upstream(name=name)
    upstream.kind, upstream.base_url, upstream.enabled = kind, base_url.rstrip("/"), True
    upstream.region, upstream.project = region or upstream.region, project or upstream.project
    upstream.clean()
    upstream.save()
    known = set(upstream.credentials.values_list("secret", flat=True))
    for secret in credentials:
        if secret not in known:
            UpstreamCredential.objects.create(upstream=upstream, secret=secret)
    for entry in model_globs or [EVERY_CLAUDE_MODEL]:
        glob, _, upstream_model = entry.partition("=")
        route, _ = ModelRoute.objects.get_or_create(pattern=glob)
        if not route.targets.filter(upstream=upstream, upstream_model=upstream_model).exists():
            last = route.targets.aggregate(last=Max("position"))["last"]
            position = 0 if last is None else last + 1
            RouteTarget.objects.create(route=route, upstream=upstream, upstream_model=upstream_model, position=position)
    publish("routes")
    return upstream


def _credential_disable(credential_id: int, reason: str) -> None:
    UpstreamCredential.objects.filter(pk=credential_id).update(
        enabled=False, disabled_reason=reason[:200], disabled_at=timezone.now()
    )
    publish("routes")


async def upstream_credential_disable(*, credential_id: int, reason: str) -> None:
    """Take a credential the upstream refused out of service, in every process."""
    await in_database_thread(_credential_disable)(credential_id, reason)


def upstream_credentials_reencrypt() -> int:
    """Encrypt every stored credential with the newest key (the first of UPSTREAM_SECRET_KEYS).

    Loading decrypts with whichever key fits and saving encrypts with the first. Each row is
    locked while it is rewritten, so that a credential the admin changes at that moment is not
    overwritten with its old value. Returns how many were rewritten.
    """
    count = 0
    for credential_id in UpstreamCredential.objects.values_list("pk", flat=True):
        with transaction.atomic():
            credential = UpstreamCredential.objects.select_for_update().filter(pk=credential_id).first()
            if credential is not None:  # deleted meanwhile
                credential.save(update_fields=["secret"])
                count += 1
    return count
