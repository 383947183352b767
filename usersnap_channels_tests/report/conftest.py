"""The report's tests open it in Debian's headless Chromium (installed by the Makefile) through Playwright,
with every request that is not the report file itself aborted and recorded: the page must need none."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from usersnap_channels_tests.conftest import REPO

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Screenshots of every opened report, kept after the run (git-ignored).
ARTIFACTS = REPO / "test-artifacts" / "report"
EMAIL_ANYWHERE = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Per module, not per session: Playwright's sync API keeps an event loop on the main thread while it
    runs, which in-process Dagster runs of other modules must not meet."""
    assert CHROMIUM.exists(), "Debian's chromium is missing: `make test` installs it (apt-get install chromium)"
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@dataclass
class Opened:
    """A report open in a page, with everything the page tried and said."""

    page: Page
    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def wait_renders(self, after: int) -> None:
        """Wait until the page has re-rendered its charts after a filter change."""
        self.page.wait_for_function(f"Number(document.documentElement.dataset.renders) > {after}", timeout=15_000)

    def renders(self) -> int:
        return int(self.page.evaluate("document.documentElement.dataset.renders"))

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def open_report(browser: Browser) -> Iterator:
    """open_report(path) → an `Opened` report whose charts have rendered (its ready flag is set)."""
    contexts = []

    def opener(path: Path) -> Opened:
        context = browser.new_context(viewport={"width": 1300, "height": 900}, offline=True)
        contexts.append(context)
        page = context.new_page()
        opened = Opened(page)
        page.route("**/*", lambda route: _only_the_file(route, path, opened))
        page.on("console", lambda m: opened.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: opened.console_errors.append(str(e)))
        page.on("dialog", lambda d: (opened.dialogs.append(d.message), d.dismiss()))
        page.goto(path.resolve().as_uri())
        page.wait_for_function(
            "document.documentElement.dataset.ready === 'true' || !!document.documentElement.dataset.error",
            timeout=30_000,
        )
        assert page.evaluate("document.documentElement.dataset.error") is None
        return opened

    yield opener
    for context in contexts:
        context.close()


def _only_the_file(route, path: Path, opened: Opened) -> None:
    if route.request.url == path.resolve().as_uri():
        route.continue_()
    else:
        opened.blocked.append(route.request.url)
        route.abort()
