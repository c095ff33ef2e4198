"""The console in a real browser: headless Chromium (Debian's package) driven by Playwright's async
API on the test's own loop; a context per test, page errors collected, signing in as a person does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tests.support.factories import PASSWORD

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}


class PageErrors(list):
    """Uncaught script errors and console errors of a page: a test ends by asserting there were none."""

    def watch(self, page: Any) -> None:
        page.on("pageerror", lambda error: self.append(f"uncaught: {error}"))
        page.on(
            "console",
            lambda message: self.append(f"console.{message.type}: {message.text}") if message.type == "error" else None,
        )


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


async def sign_in(page: Any, base_url: str, username: str) -> None:
    """Sign in on the console page and wait until it is loaded and live."""
    await page.goto(base_url + "/console")
    await page.get_by_label("Username, email or phone").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_selector("#console-view[data-loaded=true]")
    await page.wait_for_selector("#connection[data-state=live]")
