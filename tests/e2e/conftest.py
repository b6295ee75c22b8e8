"""Browser tests: Playwright drives Debian's Chromium against the whole application served by uvicorn.

Playwright's sync API runs an asyncio loop in the test's thread, and Django refuses database work
from a thread with a running loop. Rather than switch that guard off (DJANGO_ALLOW_ASYNC_UNSAFE),
tests do their few database reads and writes through `off_loop`, in a thread of their own.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
from django.db import connections
from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

T = TypeVar("T")


def off_loop(work: Callable[[], T]) -> T:
    """Run database work in a fresh thread (no event loop there), closing its connection after."""

    def run() -> T:
        try:
            return work()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


class Journey:
    """A browser page that keeps a screenshot of every step, written out only when the test fails."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.screenshots: list[tuple[str, bytes]] = []

    def step(self, name: str) -> None:
        self.screenshots.append((name, self.page.screenshot(full_page=True)))

    def save_screenshots(self, test_name: str) -> Path:
        folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", test_name)
        folder.mkdir(parents=True, exist_ok=True)
        shots = [*self.screenshots, ("at-failure", self.page.screenshot(full_page=True))]
        for number, (name, png) in enumerate(shots, start=1):
            (folder / f"{number:02d}-{name}.png").write_bytes(png)
        return folder


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


CALL_FAILED = pytest.StashKey[bool]()


@pytest.fixture(autouse=True)
def private_cache(settings) -> None:
    """allauth's rate limits (signups, logins) count in the cache: keep this test's counts its own."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}
    }


@pytest.fixture
def journey(request: pytest.FixtureRequest, gateway) -> Iterator[Journey]:
    """A fresh browser for one test, on the live server of the `gateway` fixture (dashboard and /v1)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(
            base_url=gateway.base_url,
            permissions=["clipboard-read", "clipboard-write"],
            viewport={"width": 1280, "height": 900},
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        current = Journey(page, gateway.base_url)
        try:
            yield current
        finally:
            if request.node.stash.get(CALL_FAILED, False):
                folder = current.save_screenshots(request.node.name)
                print(f"screenshots of the failed journey: {folder}")
            context.close()
            browser.close()
