"""A conversation stays on the backend and credential that warmed its prompt cache.

Two backends of equal preference, each with two credentials, all answered by the simulator (the
`x-api-key` it receives names the pair that served). A session is Claude Code's header, else the
session in `metadata.user_id`, else the key.
"""

from __future__ import annotations

import orjson
import pytest

from gateway.app import session_of
from gateway.http import Request
from gateway.models import RouteTarget
from gateway.routing import health
from gateway.services import upstream_add
from keys.selectors import KeyPrincipal
from llmapi.invalidation import publish
from tests.bedrock_stand_in import BedrockStandIn
from tests.gateway.backends import add_bedrock

HELLO = [{"role": "user", "content": "Hello"}]
PAIRS = {"sk-ant-east-1", "sk-ant-east-2", "sk-ant-west-1", "sk-ant-west-2"}


@pytest.fixture
def two_backends(gateway):
    """ "east" and "west" share the first place of every Claude route; "sim" is not among them."""
    from gateway.models import Upstream

    Upstream.objects.filter(name="sim").delete()
    for name in ("east", "west"):
        upstream_add(
            name=name, base_url=gateway.simulator.base_url, credentials=[f"sk-ant-{name}-1", f"sk-ant-{name}-2"]
        )
    RouteTarget.objects.update(position=0)
    publish("routes")
    return gateway


def ask(gateway, session: str, *, thinking: bool = False) -> str:
    """One request of `session`; returns the credential that served it."""
    messages = HELLO
    if thinking:
        signed = {"type": "thinking", "thinking": "Hm.", "signature": "c2lnbmVk"}
        messages = [*HELLO, {"role": "assistant", "content": [signed]}, {"role": "user", "content": "Go on"}]
    gateway.client().messages.create(
        model="claude-sonnet-4-6",
        max_tokens=10,
        messages=messages,
        extra_headers={"x-claude-code-session-id": session},
    )
    return gateway.simulator.requests()[-1]["headers"]["x-api-key"]


def test_a_session_stays_on_one_backend_and_credential(two_backends):
    served = {ask(two_backends, "session-a") for _ in range(20)}
    assert len(served) == 1


def test_sessions_spread_over_backends_and_credentials(two_backends):
    served = {ask(two_backends, f"session-{number}") for number in range(24)}
    assert served == PAIRS


def test_a_session_moves_only_while_its_pair_is_out_and_comes_back(two_backends):
    pinned = ask(two_backends, "session-b")
    two_backends.simulator.fail_next(529, retry_after=30)  # the pinned pair's next answer: it rests 30 s
    moved = ask(two_backends, "session-b")
    assert moved != pinned
    assert {ask(two_backends, "session-b") for _ in range(5)} == {moved}  # while the pinned pair rests
    health.reset()  # its rest is over
    assert ask(two_backends, "session-b") == pinned


def test_thinking_stays_with_its_provider_while_another_of_it_can_serve(two_backends, bedrock):
    """Bedrock ranks second for the session: while "east" or "west" can serve, it gets nothing."""
    add_bedrock(bedrock, fallback=True)
    RouteTarget.objects.filter(upstream__name="bedrock").update(position=0)
    publish("routes")
    session = session_with_bedrock_second(two_backends, bedrock)
    two_backends.simulator.fail_next(529, count=2, retry_after=30)  # both credentials of its first backend
    served = ask(two_backends, session, thinking=True)
    used = [request["headers"]["x-api-key"] for request in two_backends.simulator.requests()]
    assert len({key.rsplit("-", 1)[0] for key in used}) == 2  # east's and west's: the other backend served
    assert served in PAIRS
    assert bedrock.requests == []


def session_with_bedrock_second(gateway, bedrock: BedrockStandIn) -> str:
    """A session whose order puts a simulator pair first and Bedrock right after it."""
    from gateway.routing import in_session_order, load_route_table

    table = load_route_table()
    (route,) = [route for route in table.routes if route.pattern == "claude-*"]
    for number in range(200):
        session = f"probe-{number}"
        order = [target.upstream.name for target in in_session_order(route.targets, session)]
        if order[1] == "bedrock":
            return session
    raise AssertionError("no session ranks Bedrock second")


def test_thinking_moves_to_another_provider_when_nothing_else_can_serve(gateway, bedrock):
    add_bedrock(bedrock, fallback=True)
    gateway.simulator.fail_next(529, retry_after=30)
    ask(gateway, "session-c", thinking=True)
    assert len(bedrock.requests) == 1


def principal() -> KeyPrincipal:
    return KeyPrincipal(
        key_id=7,
        user_id=1,
        user_is_active=True,
        plan_slug="free",
        plan_name="Free",
        requests_per_minute=10,
        requests_per_5_hours=40,
        requests_per_week=200,
    )


def request_with(headers: dict[bytes, bytes]) -> Request:
    return Request(
        request_id="req_1", method="POST", path="/v1/messages", query_string=b"", raw_headers=[], headers=headers
    )


@pytest.mark.parametrize(
    ("headers", "metadata", "session"),
    [
        ({b"x-claude-code-session-id": b"abc"}, {"user_id": "user_1_account_2_session_zzz"}, "abc"),
        ({}, {"user_id": "user_9f_account_0e1d_session_5b7c-11"}, "5b7c-11"),
        ({}, {"user_id": orjson.dumps({"device_id": "d", "session_id": "s-42"}).decode()}, "s-42"),
        ({}, {"user_id": "someone"}, "key:7"),
        ({}, None, "key:7"),
        ({}, {"user_id": "{not json"}, "key:7"),
    ],
)
def test_the_session_of_a_request(headers, metadata, session):
    assert session_of(request_with(headers), metadata, principal()) == session
