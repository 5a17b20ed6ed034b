"""Browser tests: headless Debian Chromium driven by Playwright against the whole dev stack.

Chromium is the system one (``/usr/bin/chromium``); no browser is ever downloaded. Without
it (or without the ``playwright`` package) the browser tests are skipped with the reason.
Each test leaves a screenshot of its final state in ``test-artifacts/browser/``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.stack import DevStack

CHROMIUM = os.environ.get("RELEASEBOT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium per module. Not per session: while Playwright's sync API is
    active it marks this thread's event loop as running, which the async tests that follow
    in the same process cannot live with."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[DevStack]:
    with DevStack(tmp_path, bake="1s") as running:
        yield running


@pytest.fixture
def page(chromium: Any, stack: DevStack, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The console page as carol, in a laptop-sized window."""
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    tab.goto(f"{stack.console_url}/?as=carol")
    tab.locator("#live.on").wait_for()
    yield tab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    try:
        tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    finally:
        context.close()
