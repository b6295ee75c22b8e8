"""The whole journey in a real browser: sign up, verify, log in, create a key, use it, see it count, delete it."""

from __future__ import annotations

import re
import uuid

import anthropic
import pytest
from django.core import mail
from playwright.sync_api import expect

from gateway.usage.drain import drain_usage_stream
from tests.e2e.conftest import Journey, off_loop
from tests.helpers import wait_until

pytestmark = pytest.mark.browser

PASSWORD = "a long and unusual passphrase"
MESSAGE = {"model": "claude-sonnet-4-6", "max_tokens": 32, "messages": [{"role": "user", "content": "Hello"}]}


def confirmation_link(address: str) -> str:
    wait_until(lambda: any(address in message.to for message in mail.outbox))
    (message,) = [message for message in mail.outbox if address in message.to]
    match = re.search(r"https?://\S+/accounts/confirm-email/\S+/", message.body)
    assert match, message.body
    return match.group(0)


def sign_up(journey: Journey, email: str) -> None:
    page = journey.page
    page.goto("/")
    journey.step("home")
    page.get_by_role("link", name="Create a free account").click()
    expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password (again)").fill(PASSWORD)
    journey.step("signup")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    journey.step("verification-sent")


def verify(journey: Journey, email: str) -> None:
    page = journey.page
    page.goto(confirmation_link(email))
    expect(page.get_by_text(email)).to_be_visible()
    journey.step("confirm-email")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def log_out_and_in(journey: Journey, email: str) -> None:
    page = journey.page
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("link", name="Log in")).to_be_visible()
    page.get_by_role("link", name="Log in").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    journey.step("login")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    journey.step("dashboard")


def create_key(journey: Journey, name: str) -> str:
    page = journey.page
    page.get_by_role("navigation", name="Dashboard").get_by_role("link", name="Keys").click()
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create key").click()
    shown = page.locator("#new-key")
    expect(shown).to_have_text(re.compile(r"^sk-llmapi-[0-9A-Za-z]{46}$"))
    journey.step("key-created")
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == shown.inner_text()
    return copied


def stored_usage_requests() -> int:
    """Drain the usage stream into the rollups, as the Celery worker would; how many records it stored."""
    return off_loop(drain_usage_stream)


def test_signup_to_first_request_and_back(journey: Journey, mailoutbox):
    email = f"e2e-{uuid.uuid4().hex[:8]}@example.com"
    page = journey.page
    sign_up(journey, email)
    verify(journey, email)
    log_out_and_in(journey, email)

    key = create_key(journey, "laptop")
    sdk = anthropic.Anthropic(base_url=journey.base_url, api_key=key, max_retries=0)
    answer = sdk.messages.create(**MESSAGE)
    assert answer.content[0].type == "text"

    # The windows count at once: the overview's bars show the request.
    page.get_by_role("navigation", name="Dashboard").get_by_role("link", name="Overview").click()
    expect(page.locator('[data-window="minute"] [data-used]')).to_have_text("1")
    expect(page.locator('[data-window="week"] [data-used]')).to_have_text("1")
    journey.step("overview-after-request")

    # The usage charts read the rollups, which the usage pipeline fills.
    stored = 0

    def drained_one() -> bool:
        nonlocal stored
        stored += stored_usage_requests()
        return stored >= 1

    wait_until(drained_one)
    page.goto("/dashboard/usage/?period=24h")
    expect(page.locator(".stats li").first).to_have_text(re.compile(r"^\s*1\s+requests\s*$"))
    by_key = page.get_by_role("region", name="By key", exact=True)  # not "Prompt cache, by key and model"
    expect(by_key.get_by_role("row", name=re.compile("laptop"))).to_be_visible()
    by_key_and_model = page.get_by_role("region", name="Prompt cache, by key and model")
    expect(by_key_and_model.get_by_role("row", name=re.compile("laptop.*claude-sonnet-4-6"))).to_be_visible()
    journey.step("usage")

    # Delete the key: the same call is refused from now on.
    page.get_by_role("navigation", name="Dashboard").get_by_role("link", name="Keys").click()
    page.get_by_role("link", name="Delete the key laptop").click()
    journey.step("delete-confirmation")
    page.get_by_role("button", name="Delete the key").click()
    expect(page.get_by_text("Deleted the key “laptop”")).to_be_visible()
    journey.step("deleted")
    with pytest.raises(anthropic.AuthenticationError) as refused:
        sdk.messages.create(**MESSAGE)
    assert refused.value.status_code == 401


def test_pages_work_without_javascript_too(journey: Journey):
    """The public pages render and link up with scripts off: forms post plainly."""
    context = journey.page.context.browser.new_context(base_url=journey.base_url, java_script_enabled=False)
    page = context.new_page()
    page.goto("/docs/")
    expect(page.get_by_role("heading", name="Quickstart")).to_be_visible()
    page.get_by_role("link", name="Log in").click()
    page.get_by_label("Email").fill("nobody@example.com")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("not correct")).to_be_visible()
    context.close()
