"""Headless Chromium (Debian's package) driven by Playwright's async API on the test's own loop."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture
def chromium() -> str:
    """The browser's path; the test is skipped, with the reason shown by `-ra`, only when it is not installed."""
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM}; `make test` installs it "
                    "(apt-get install chromium), which failed or was not run on this machine")
    return str(CHROMIUM)


class PageErrors(list):
    """Uncaught script errors and console errors of a page: a test ends by asserting there were none."""

    def watch(self, page: Any) -> None:
        page.on("pageerror", lambda error: self.append(f"uncaught: {error}"))
        page.on("console", lambda message: self.append(f"console.{message.type}: {message.text}")
                if message.type == "error" else None)


@asynccontextmanager
async def browser_context(chromium: str, **options: Any) -> AsyncIterator[Any]:
    """A fresh browser context (1280×800 unless told) of a Chromium launched for this test."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport=options.pop("viewport", VIEWPORT), **options)
            context.set_default_timeout(10_000)
            yield context
        finally:
            await browser.close()
