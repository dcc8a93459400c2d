"""Debian's Chromium, headless, driven by Playwright: open a page, collect console errors, screenshot it."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from playwright.async_api import async_playwright

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextlib.asynccontextmanager
async def chromium_page(profile: Path):
    """A page in a fresh headless Chromium (profile in ``profile``); yields ``(page, errors)``.

    ``errors`` collects console errors and uncaught page errors as they happen.
    Fails, never skips, when Chromium is not installed.
    """
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is not installed (scripts/test.sh installs it)"
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile), executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            errors: list[str] = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page, errors
        finally:
            await context.close()
