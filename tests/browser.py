"""The page as a person sees it: headless Chromium from the system, driven by Playwright, offline."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# A quiet, isolated headless browser: nothing of its own goes to a network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
DRAWN = "[...document.querySelectorAll('.js-plotly-plot')].every(fig => fig.querySelector('.main-svg'))"


@contextmanager
def chromium(profile: Path, width: int = 1440):
    """A tab on a fresh profile that may load files only: every other request is aborted and recorded.

    Yields (tab, console and page errors, blocked URLs).
    """
    from playwright.sync_api import sync_playwright

    errors, blocked = [], []
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": width, "height": 900})
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                      else (blocked.append(route.request.url), route.abort()))
        tab = context.new_page()
        tab.on("console", lambda message: message.type == "error" and errors.append(message.text))
        tab.on("pageerror", lambda error: errors.append(str(error)))
        try:
            yield tab, errors, blocked
        finally:
            context.close()
