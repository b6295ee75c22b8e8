"""Backends of every kind for the gateway's tests: Bedrock and Vertex stand-ins as upstreams."""

from __future__ import annotations

from gateway.services import upstream_add
from tests.bedrock_stand_in import BedrockStandIn
from tests.vertex_stand_in import VertexStandIn

BEDROCK_MODEL_ID = "anthropic.claude-sonnet-4-6-v1:0"  # a colon: the URL must carry it encoded, signed alike


def add_bedrock(bedrock: BedrockStandIn, *, credential: str | None = None, fallback: bool = False) -> None:
    """Bedrock for every Claude model, with its own id for claude-sonnet-4-6 unless it is a
    fallback (an exact route's target comes before the glob's, so it would be tried first)."""
    upstream_add(
        name="bedrock",
        kind="bedrock",
        base_url=bedrock.base_url,
        region=bedrock.region,
        credentials=[credential or bedrock.credential],
        model_globs=["claude-*"] if fallback else [f"claude-sonnet-4-6={BEDROCK_MODEL_ID}", "claude-*"],
    )


def add_vertex(vertex: VertexStandIn, *, key: str | None = None) -> None:
    upstream_add(
        name="vertex",
        kind="vertex",
        base_url=vertex.base_url,
        region=vertex.region,
        credentials=[key or vertex.service_account_key()],
        model_globs=["claude-*"],
    )


def sessions_starting_at(secret: str, count: int = 4) -> list[str]:
    """Sessions whose own order of their upstream's credentials starts at the one with `secret`
    (gateway/routing.py ranks credentials per session)."""
    from gateway.models import UpstreamCredential
    from gateway.routing import session_rank

    credentials = list(UpstreamCredential.objects.filter(enabled=True))
    wanted = next(credential for credential in credentials if credential.secret == secret)
    siblings = [credential.pk for credential in credentials if credential.upstream_id == wanted.upstream_id]
    found = []
    for number in range(1000):
        session = f"session-{number}"
        if min(siblings, key=lambda credential_id: session_rank(session, credential_id)) == wanted.pk:
            found.append(session)
            if len(found) == count:
                return found
    raise AssertionError(f"fewer than {count} sessions start at that credential")


def only(kind: str, gateway, bedrock: BedrockStandIn, vertex: VertexStandIn, credential: str | None = None) -> None:
    """The gateway served by one kind of backend alone (with `credential`, else the stand-in's own);
    `gateway.simulator` is the one that answers."""
    if kind == "anthropic":
        return
    from gateway.models import Upstream

    Upstream.objects.filter(name="sim").delete()
    if kind == "bedrock":
        add_bedrock(bedrock, credential=credential)
        gateway.simulator = bedrock.simulator
    else:
        add_vertex(vertex, key=credential)
        gateway.simulator = vertex.simulator
