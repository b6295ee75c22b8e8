"""The one ASGI application sends /v1 to the gateway and the rest to Django."""

from __future__ import annotations

import httpx
import pytest

from llmapi.asgi import application, is_gateway_path


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/v1", True), ("/v1/messages", True), ("/v1/anything/else", True), ("/v10", False), ("/admin/", False)],
)
def test_gateway_path_matching(path, expected):
    assert is_gateway_path(path) is expected


@pytest.fixture
async def client():
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client


async def test_v1_reaches_the_gateway_with_an_anthropic_shaped_404(client):
    response = await client.post("/v1/anything", json={})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "not_found_error"
    assert body["request_id"] == response.headers["request-id"]
    assert body["request_id"].startswith("req_")


async def test_login_page_reaches_django(client):
    response = await client.get("/accounts/login/")
    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert 'name="login"' in response.text
