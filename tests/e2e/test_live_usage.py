"""The overview's window bars move over the WebSocket when an SDK request is counted, without a reload."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.dashboard.conftest import verify_email
from tests.e2e.conftest import Journey, off_loop
from tests.e2e.test_pages import session_cookie_of

pytestmark = pytest.mark.browser

MESSAGE = {"model": "claude-sonnet-4-6", "max_tokens": 16, "messages": [{"role": "user", "content": "Hello"}]}
FASTER_THAN_POLLING = 5_000  # ms; the page polls every 15 s, so a bar that moves sooner came over the socket


def test_the_bars_move_after_an_sdk_request(journey: Journey, gateway):
    page = journey.page
    cookie = off_loop(lambda: session_cookie_of(verify_email(gateway.user), gateway.base_url))
    page.context.add_cookies([cookie])
    frames: list[str] = []
    page.on("websocket", lambda socket: socket.on("framereceived", lambda payload: frames.append(payload)))
    page.goto("/dashboard/")
    panel = page.locator("#windows")
    expect(panel).to_have_attribute("data-live-state", "open")
    minute = page.locator('[data-window="minute"] [data-used]')
    expect(minute).to_have_text("0")

    gateway.client().messages.create(**MESSAGE)

    expect(minute).to_have_text("1", timeout=FASTER_THAN_POLLING)
    expect(page.locator('[data-window="minute"] progress')).to_have_attribute("value", "1")
    assert "usage-changed" in frames
    journey.step("bars-moved")
