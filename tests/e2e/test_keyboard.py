"""Every dashboard action by keyboard alone: create and copy a key, delete it, go Back, filter usage, log out."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.dashboard.conftest import verify_email
from tests.e2e.conftest import Journey, off_loop
from tests.e2e.test_pages import session_cookie_of

pytestmark = pytest.mark.browser

MOST_TABS = 60


def tab_to(page: Page, target: Locator) -> None:
    """Press Tab until `target` has the focus, as a keyboard user would."""
    for _ in range(MOST_TABS):
        if target.evaluate("element => element === document.activeElement"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{target} never got the focus with Tab")


def test_every_key_action_by_keyboard(journey: Journey, gateway):
    page = journey.page
    page.context.add_cookies([off_loop(lambda: session_cookie_of(verify_email(gateway.user), gateway.base_url))])
    page.goto("/dashboard/keys/")

    tab_to(page, page.get_by_label("Name"))
    page.keyboard.type("keyboard")
    page.keyboard.press("Enter")
    expect(page.locator("#new-key")).to_have_text(re.compile(r"^sk-llmapi-"))
    # The focus lands on Copy, not on <body>: one key press copies the new key.
    copy = page.get_by_role("button", name="Copy", exact=True)
    expect(copy).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    journey.step("created-by-keyboard")

    tab_to(page, page.get_by_role("link", name="Delete the key keyboard"))
    page.keyboard.press("Enter")
    tab_to(page, page.get_by_role("button", name="Delete the key"))
    page.keyboard.press("Enter")
    expect(page.get_by_text("Deleted the key “keyboard”")).to_be_visible()

    # Back returns to the confirmation of a key that no longer exists: the list says so, not a 404.
    page.go_back()
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    expect(page.get_by_text("That key is already deleted.")).to_be_visible()
    journey.step("back-after-delete")

    page.goto("/dashboard/usage/")
    tab_to(page, page.get_by_label("Period", exact=True))
    page.keyboard.press("ArrowDown")
    tab_to(page, page.get_by_role("button", name="Show"))
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"period=30d"))  # the default is 7 days; one step down

    tab_to(page, page.get_by_role("button", name="Log out"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("link", name="Log in")).to_be_visible()
