"""/api: keys, windows and the plan, over the browser session with CSRF; anyone else's key is a 404."""

from __future__ import annotations

import pytest

from keys import keyformat
from keys.models import ApiKey
from keys.services import api_key_create
from tests.dashboard.conftest import csrf_token, logged_in_api_client

pytestmark = pytest.mark.django_db


def test_anonymous_requests_are_refused(client):
    for url in ("/api/keys/", "/api/plan/", "/api/windows/"):
        response = client.get(url)
        assert response.status_code == 403
        assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_create_returns_the_full_key_once(alice, alice_api):
    response = alice_api.post("/api/keys/", {"name": "ci"}, format="json")
    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert keyformat.is_well_formed(body["key"])
    assert body["name"] == "ci"
    assert body["masked"] == ApiKey.objects.get().masked
    assert body["last_used_at"] is None

    listed = alice_api.get("/api/keys/")
    detail = alice_api.get(f"/api/keys/{body['id']}/")
    for later in (listed, detail):
        assert later.status_code == 200
        assert body["key"] not in later.content.decode()
    assert [key["name"] for key in listed.json()] == ["ci"]
    assert "key" not in detail.json()


def test_create_needs_the_csrf_header(alice):
    client = logged_in_api_client(alice)
    response = client.post("/api/keys/", {"name": "ci"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("payload", [{}, {"name": ""}, {"name": "x" * 101}, {"name": ["a"]}])
def test_bad_names_are_400(alice_api, payload):
    response = alice_api.post("/api/keys/", payload, format="json")
    assert response.status_code == 400
    assert "name" in response.json()
    assert not ApiKey.objects.exists()


def test_malformed_json_is_400(alice_api):
    response = alice_api.post("/api/keys/", "{not json", content_type="application/json")
    assert response.status_code == 400


def test_the_key_allowance_is_a_400_with_the_message(alice, alice_api):
    for number in range(2):
        assert alice_api.post("/api/keys/", {"name": f"k{number}"}, format="json").status_code == 201
    response = alice_api.post("/api/keys/", {"name": "over"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": "Your Free plan allows 2 keys. Delete one or upgrade your plan."}


def test_an_unverified_account_gets_403_with_a_message(alice):
    client = logged_in_api_client(alice)
    client.credentials(HTTP_X_CSRFTOKEN=csrf_token(client))
    response = client.post("/api/keys/", {"name": "ci"}, format="json")
    assert response.status_code == 403
    assert response.json()["detail"].startswith("Verify your email address")
    assert not ApiKey.objects.exists()


def test_delete_revokes(alice, alice_api):
    created = api_key_create(user=alice, name="old")
    response = alice_api.delete(f"/api/keys/{created.api_key.pk}/")
    assert response.status_code == 204
    assert not ApiKey.objects.get().is_active
    assert alice_api.get("/api/keys/").json() == []
    assert alice_api.delete(f"/api/keys/{created.api_key.pk}/").status_code == 404


def test_delete_needs_the_csrf_header(alice):
    created = api_key_create(user=alice, name="old")
    response = logged_in_api_client(alice).delete(f"/api/keys/{created.api_key.pk}/")
    assert response.status_code == 403
    assert ApiKey.objects.get().is_active


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/keys/{id}/"), ("delete", "/api/keys/{id}/"), ("get", "/api/keys/{id}/windows/")],
)
def test_someone_elses_key_is_404(alice, bob_api, method, path):
    created = api_key_create(user=alice, name="alices")
    response = getattr(bob_api, method)(path.format(id=created.api_key.pk))
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    assert "alices" not in response.content.decode()
    assert ApiKey.objects.get().is_active
    assert bob_api.get("/api/keys/").json() == []
    assert bob_api.get("/api/windows/").json() == []


def test_plan(alice_api):
    assert alice_api.get("/api/plan/").json() == {
        "slug": "free",
        "name": "Free",
        "requests_per_minute": 10,
        "requests_per_5_hours": 40,
        "requests_per_week": 200,
        "monthly_token_quota": None,
        "input_tokens_per_minute": 200_000,
        "output_tokens_per_minute": 40_000,
        "max_keys": 2,
        "price_monthly_cents": 0,
    }


def test_windows_of_a_fresh_key(alice, alice_api):
    created = api_key_create(user=alice, name="laptop")
    windows = alice_api.get(f"/api/keys/{created.api_key.pk}/windows/").json()
    assert [(w["name"], w["used"], w["limit"]) for w in windows] == [
        ("minute", 0, 10),
        ("5h", 0, 40),
        ("week", 0, 200),
        ("input-tokens", 0, 200_000),
        ("output-tokens", 0, 40_000),
    ]
    (entry,) = alice_api.get("/api/windows/").json()
    assert entry["key"]["id"] == created.api_key.pk
    assert [(w["name"], w["used"]) for w in entry["windows"]][:3] == [("minute", 0), ("5h", 0), ("week", 0)]
