"""Site-wide behaviour of the Django pages: CSP, the favicon, Claude Code's pre-connect, branded errors."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import path

from llmapi.urls import urlpatterns as site_urlpatterns

pytestmark = pytest.mark.django_db


def failing_view(request):
    raise RuntimeError("boom")


urlpatterns = [*site_urlpatterns, path("boom/", failing_view)]


def test_every_page_has_a_content_security_policy_without_inline_code(client):
    policy = client.get("/").headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in policy
    assert "Content-Security-Policy" in client.get("/no-such-page/").headers


def test_pages_link_a_favicon_that_exists(client):
    page = client.get("/").content.decode()
    assert 'rel="icon" href="/static/favicon.svg"' in page
    assert client.get("/static/favicon.svg").status_code == 200
    assert client.get("/favicon.ico").headers["Location"] == "/static/favicon.svg"


def test_errors_are_branded_pages_without_debug(settings):
    settings.DEBUG = False
    settings.ROOT_URLCONF = __name__
    client = Client(raise_request_exception=False)
    missing = client.get("/no-such-page/")
    assert missing.status_code == 404
    assert "This page does not exist" in missing.content.decode()
    assert 'href="/static/css/site.css"' in missing.content.decode()
    failed = client.get("/boom/")
    assert failed.status_code == 500
    assert "Something went wrong on our side" in failed.content.decode()


def test_an_expired_form_is_a_branded_403(settings):
    settings.DEBUG = False
    client = Client(enforce_csrf_checks=True)
    refused = client.post("/accounts/login/", {"login": "a@example.com", "password": "x"})
    assert refused.status_code == 403
    assert "This form has expired" in refused.content.decode()
