"""/api and the dashboard's pages under hostile input: never a 500, and sessions, CSRF and ownership hold.

Every method on every path, as nobody, with a session but no CSRF token, with a wrong token, and with both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from allauth.account.models import EmailAddress
from django.test import Client
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from accounts.models import User
from keys.services import api_key_create
from tests.fuzz.conftest import fuzz_settings
from tests.fuzz.raw_http import Header, RawResponse, send
from tests.fuzz.strategies import hostile_raw_bodies, json_values

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
AUTH_STATES = ["nobody", "session", "session-wrong-csrf", "session-csrf"]
CONTENT_TYPES = [
    b"application/json",
    b"application/x-www-form-urlencoded",
    b"multipart/form-data",
    b"multipart/form-data; boundary=x",
    b"text/plain",
    b"application/json; charset=\xff",
    b"\xd0\xba",
]
PAGES = [
    "/",
    "/docs/",
    "/accounts/login/",
    "/accounts/signup/",
    "/accounts/password/reset/",
    "/accounts/2fa/",
    "/dashboard/",
    "/dashboard/windows/",
    "/dashboard/keys/",
    "/dashboard/usage/?period=%FF&key=abc&model=%00",
    "/dashboard/usage/export.csv?period=%FF",
    "/dashboard/plan/",
    "/admin/",
    "/admin/login/?next=//evil.example/",
    "/admin/accounts/user/",
    "/static/css/site.css",
    "/nowhere/%FF",
]


@dataclass(frozen=True)
class Sessions:
    base_url: str
    session_cookie: str
    csrf_token: str
    own_key_id: int
    others_key_id: int

    def headers(self, auth_state: str) -> list[Header]:
        if auth_state == "nobody":
            return []
        cookies = f"sessionid={self.session_cookie}; csrftoken={self.csrf_token}".encode()
        headers = [("cookie", cookies)]
        if auth_state == "session-csrf":
            headers.append(("x-csrftoken", self.csrf_token.encode()))
        elif auth_state == "session-wrong-csrf":
            headers.append(("x-csrftoken", b"x" * 32))
        return headers

    def api_paths(self) -> list[str]:
        paths = ["/api/", "/api/keys/", "/api/windows/", "/api/plan/", "/api/nowhere/"]
        for key_id in (self.own_key_id, self.others_key_id, 0, 10**30):
            paths += [f"/api/keys/{key_id}/", f"/api/keys/{key_id}/windows/"]
        return [*paths, "/api/keys/-1/", "/api/keys/%FF/", "/api/keys?format=api"]


def verified_user(email: str) -> User:
    user = User.objects.create_user(email, "correct horse battery")
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


@pytest.fixture
def sessions(asgi_server, live_server_db) -> Sessions:
    alice, bob = verified_user("alice@example.com"), verified_user("bob@example.com")
    client = Client()
    client.force_login(alice)
    client.get(reverse("account_reset_password"))  # any page with a form sets the CSRF cookie
    return Sessions(
        base_url=asgi_server.base_url,
        session_cookie=client.cookies["sessionid"].value,
        csrf_token=client.cookies["csrftoken"].value,
        own_key_id=api_key_create(user=alice, name="laptop").api_key.pk,
        others_key_id=api_key_create(user=bob, name="bob's").api_key.pk,
    )


def json_bytes(value: object) -> bytes:
    return json.dumps(value).encode()  # not orjson: integers beyond 64 bits are part of the point


bodies = st.one_of(
    st.just(b""),
    hostile_raw_bodies,
    json_values.map(json_bytes),
    st.dictionaries(st.sampled_from(["name", "id", "key"]), json_values, max_size=3).map(json_bytes),
    st.text(max_size=60).map(lambda text: text.encode("utf-8", "surrogatepass")),
)


def assert_no_server_error(response: RawResponse) -> None:
    assert response.status < 500, (response.status, response.body[:300])


@fuzz_settings(max_examples=250)
@given(data=st.data(), method=st.sampled_from(METHODS), auth_state=st.sampled_from(AUTH_STATES), body=bodies)
def test_api(sessions, data, method, auth_state, body):
    path = data.draw(st.sampled_from(sessions.api_paths()), label="path")
    content_type = data.draw(st.sampled_from(CONTENT_TYPES), label="content_type")
    headers = [*sessions.headers(auth_state), ("content-type", content_type)]
    response = send(sessions.base_url, method, path, headers, body)
    assert_no_server_error(response)
    if auth_state == "nobody" or (method in UNSAFE_METHODS and auth_state != "session-csrf"):
        # No session, or no CSRF token for a change: refused (or redirected to the canonical URL), never served.
        assert not 200 <= response.status < 300, (response.status, response.body[:300])
    if f"/{sessions.others_key_id}/" in path:
        # Bob's key: nothing to read, delete or watch, for Alice or anyone (OPTIONS describes the endpoint only).
        assert not 200 <= response.status < 300 or (method == "OPTIONS" and b"bob" not in response.body), response.body
    if path.startswith("/api/") and response.status != 404 and method != "HEAD" and response.body:
        assert response.header("content-type") == "application/json", response.headers


@fuzz_settings(max_examples=120)
@given(
    path=st.sampled_from(PAGES),
    method=st.sampled_from(METHODS),
    auth_state=st.sampled_from(AUTH_STATES),
    body=bodies,
    content_type=st.sampled_from(CONTENT_TYPES),
)
def test_pages(sessions, path, method, auth_state, body, content_type):
    headers = [*sessions.headers(auth_state), ("content-type", content_type)]
    assert_no_server_error(send(sessions.base_url, method, path, headers, body))
