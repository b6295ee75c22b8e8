"""/v1 under hostile input: never a 500, and every error in Anthropic's shape with our request id.

Hypothesis, not schemathesis: the properties are about bytes no schema describes (invalid UTF-8,
duplicated and non-latin-1 headers, NaN, nesting deeper than any parser allows), and /v1's schema is
Anthropic's, which the gateway mostly passes on rather than checks.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.conftest import fuzz_settings
from tests.fuzz.raw_http import RawResponse, send
from tests.fuzz.strategies import HUGE, hostile_headers, message_bodies, valid_message_body

VALID_BODY = orjson.dumps(valid_message_body(stream=False))

MESSAGE_PATHS = ["/v1/messages", "/v1/messages/count_tokens", "/v1/messages?beta=true"]
PATHS = [
    "/v1",
    "/v1/",
    "/v1/messages",
    "/v1/messages/",
    "/v1//messages",
    "/v1/messages/count_tokens",
    "/v1/messages/batches",
    "/v1/models",
    "/v1/models/",
    "/v1/models/claude-sonnet-4-6",
    "/v1/models/%FF%FE%00",
    "/v1/models/" + "a" * 5_000,
    "/v1/models/..%2F..%2Fadmin",
    "/v1/complete",
]
MODEL_QUERIES = ["", "limit=0", "limit=1001", "limit=-1", "limit=abc", "limit=1e3", "limit=" + "9" * 40]
MODEL_QUERIES += ["after_id=%00", "before_id=%FF", "after_id=x&before_id=y", "limit=5&limit=6", "%ZZ=%"]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "PROPFIND"]
CONTENT_TYPES = [b"application/json", b"text/plain", b"application/json; charset=latin-1", b"\xff/\xfe", b""]


def assert_anthropic_error_shape(response: RawResponse, method: str = "POST") -> None:
    assert response.status != 500, response.body[:500]
    request_id = response.header("request-id")
    if request_id is None:
        # Refused by the HTTP server itself, before the application saw it (e.g. a header over its limit).
        assert 400 <= response.status < 500, (response.status, response.body[:200])
        return
    assert request_id.startswith("req_")
    if response.status < 400 or method == "HEAD":
        return
    body = response.json()
    assert isinstance(body, dict), body
    assert body.keys() == {"type", "error", "request_id"}, body
    assert body["type"] == "error"
    assert body["request_id"] == request_id
    assert body["error"].keys() == {"type", "message"}, body
    assert isinstance(body["error"]["type"], str)
    assert isinstance(body["error"]["message"], str)


@fuzz_settings(max_examples=150)
@given(
    body=message_bodies(),
    path=st.sampled_from(MESSAGE_PATHS),
    content_type=st.sampled_from(CONTENT_TYPES),
)
def test_hostile_bodies(fuzz_gateway, body, path, content_type):
    headers = [("x-api-key", fuzz_gateway.key.encode()), ("content-type", content_type)]
    assert_anthropic_error_shape(send(fuzz_gateway.base_url, "POST", path, headers, body))


@pytest.mark.parametrize(
    "extra_headers",
    [[("anthropic-version", HUGE)], [("content-type", b"application/json"), ("content-type", b"application/json")]],
    ids=["huge-anthropic-version", "duplicated-content-type"],
)
def test_a_header_the_backend_refuses_is_answered_in_anthropic_shape(fuzz_gateway, extra_headers):
    headers = [("x-api-key", fuzz_gateway.key.encode()), *extra_headers]
    response = send(fuzz_gateway.base_url, "POST", "/v1/messages", headers, VALID_BODY)
    assert_anthropic_error_shape(response)


@fuzz_settings(max_examples=120)
@given(data=st.data(), path=st.sampled_from([*MESSAGE_PATHS, "/v1/models", "/v1/models/claude-sonnet-4-6"]))
def test_hostile_headers(fuzz_gateway, data, path):
    headers = data.draw(hostile_headers(fuzz_gateway.key))
    method = "GET" if "models" in path else "POST"
    body = b"" if method == "GET" else VALID_BODY
    assert_anthropic_error_shape(send(fuzz_gateway.base_url, method, path, headers, body), method)


@fuzz_settings(max_examples=120)
@given(
    method=st.sampled_from(METHODS),
    path=st.sampled_from(PATHS),
    query=st.sampled_from(MODEL_QUERIES),
    with_key=st.booleans(),
)
def test_every_method_on_every_path(fuzz_gateway, method, path, query, with_key):
    headers = [("x-api-key", fuzz_gateway.key.encode())] if with_key else []
    target = f"{path}?{query}" if query and "?" not in path else path
    body = b"{}" if method in {"POST", "PUT", "PATCH"} else b""
    assert_anthropic_error_shape(send(fuzz_gateway.base_url, method, target, headers, body), method)
