"""Every page, logged out and logged in, on a desktop and on a 360 px phone.

Each page must carry the Content-Security-Policy, leave the console free of errors (CSP violations,
failed resources such as a missing favicon, script errors), never scroll sideways, keep the dashboard
tabs on one row, and pass axe-core without a serious or critical violation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

from accounts.models import User
from keys.services import api_key_create
from tests.dashboard.conftest import verify_email
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, off_loop

pytestmark = pytest.mark.browser

AXE_SCRIPT = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 740}
MISSING_PAGE = "/no-such-page/"
PUBLIC_PAGES = ["/", "/docs/", "/accounts/login/", "/accounts/signup/", "/accounts/password/reset/", MISSING_PAGE]
ACCOUNT_PAGES = [
    "/dashboard/",
    "/dashboard/keys/",
    "/dashboard/usage/",
    "/dashboard/usage/?period=30d",
    "/dashboard/plan/",
    "/accounts/email/",
    "/accounts/password/change/",
]


def console_errors(page: Page, *, expected_status: int) -> list[str]:
    """The console's errors, except the page's own expected error status (a 404 page is meant to be one)."""
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        own_status = message.location.get("url") == page.url and f"status of {expected_status}" in message.text
        if message.type == "error" and not own_status:
            errors.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"script error: {error}"))
    return errors


def session_cookie_of(user: User, base_url: str) -> dict[str, str]:
    client = Client()
    client.force_login(user)
    return {
        "name": settings.SESSION_COOKIE_NAME,
        "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
        "url": base_url,
    }


def axe_violations(page: Page) -> list[str]:
    # Evaluated over the DevTools protocol, which the page's Content-Security-Policy does not govern.
    page.evaluate(AXE_SCRIPT.read_text())
    results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"axe {violation['id']} ({violation['impact']}): {violation['help']} at "
        + json.dumps([node["target"] for node in violation["nodes"]][:3])
        for violation in results["violations"]
        if violation["impact"] in {"serious", "critical"}
    ]


def wrapped_tabs(page: Page) -> list[str]:
    rows = page.evaluate("new Set([...document.querySelectorAll('.tabs a')].map(tab => tab.offsetTop)).size")
    return [f"the dashboard tabs wrap onto {rows} rows"] if rows > 1 else []


def sideways_scroll(page: Page) -> list[str]:
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    return [f"scrolls sideways: {widths[0]} px wide in a {widths[1]} px window"] if widths[0] > widths[1] else []


def check_page(context: BrowserContext, path: str) -> list[str]:
    page = context.new_page()
    expected_status = 404 if path == MISSING_PAGE else 200
    errors = console_errors(page, expected_status=expected_status)
    try:
        response = page.goto(path)
        assert response is not None
        problems = [] if response.status == expected_status else [f"status {response.status}"]
        if "content-security-policy" not in response.headers:
            problems.append("no Content-Security-Policy header")
        page.wait_for_load_state("networkidle")
        problems += sideways_scroll(page)
        problems += wrapped_tabs(page)
        if "{#" in page.content():
            problems.append("a template comment leaks into the page")
        problems += axe_violations(page)
        problems += errors
        return [f"{path}: {problem}" for problem in problems]
    finally:
        page.close()


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not AXE_SCRIPT.exists():
        pytest.fail("axe-core is missing: run `npm ci --prefix tests/e2e` (make test does)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def member(gateway) -> tuple[User, int]:
    def prepare() -> tuple[User, int]:
        user = verify_email(gateway.user)
        return user, api_key_create(user=user, name="ci").api_key.pk

    return off_loop(prepare)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_page_is_clean(gateway, member, browser: Browser, viewport: dict[str, int]):
    user, key_id = member
    anonymous = browser.new_context(base_url=gateway.base_url, viewport=viewport)
    problems = [problem for path in PUBLIC_PAGES for problem in check_page(anonymous, path)]
    anonymous.close()

    logged_in = browser.new_context(base_url=gateway.base_url, viewport=viewport)
    logged_in.add_cookies([off_loop(lambda: session_cookie_of(user, gateway.base_url))])
    pages = [*ACCOUNT_PAGES, f"/dashboard/keys/{key_id}/delete/", "/", "/docs/", MISSING_PAGE]
    problems += [problem for path in pages for problem in check_page(logged_in, path)]
    logged_in.close()
    assert problems == [], "\n".join(problems)
