"""The home page says what the product is and lists the plans from the database."""

from __future__ import annotations

import logging

import pytest

from plans.models import Plan

pytestmark = pytest.mark.django_db


def test_home_page_shows_plans_and_base_url(client, settings):
    response = client.get("/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Anthropic Messages API" in page
    assert f"export ANTHROPIC_BASE_URL={settings.PUBLIC_BASE_URL}" in page
    assert page.index("Free") < page.index("Pro") < page.index("Max 5x") < page.index("Max 20x")


def test_home_page_follows_plan_edits(client):
    Plan.objects.filter(slug="pro").update(name="Professional", requests_per_minute=25)
    Plan.objects.filter(slug="max-20x").update(is_public=False)
    page = client.get("/").content.decode()
    assert "Professional" in page
    assert "Max 20x" not in page


def test_head_request_answers_quickly_for_preconnects(client, caplog):
    """What Claude Code really sends to its base URL at every start, without credentials."""
    with caplog.at_level(logging.WARNING):
        response = client.head("/api/hello")
    assert response.status_code == 204
    assert response.content == b""
    assert caplog.records == []  # no "Not Found" warnings for a routine probe
    assert client.head("/").status_code == 200
