"""The pre-deploy checklist in the browser console: a production card lists each check as
✓, ✗ or ⏳, and the example's security scan, pending at first, turns green by itself (the
GitHub stand-in finishes it 20 s after the bot first reads it), after which Approve is let
through. Each test leaves a screenshot in ``test-artifacts/browser/``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.stack import DevStack

pytestmark = pytest.mark.browser


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[DevStack]:
    """The dev stack with the pre-deploy checks on, read from the GitHub stand-in."""
    with DevStack(tmp_path, checks=True) as running:
        yield running


def send(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name=re.compile("slash command"))
    box.fill(text)
    box.press("Enter")
    expect(box).to_have_value("")


def card(page: Page, key: str) -> Locator:
    return page.locator("article.msg:not(.reply)").filter(
        has=page.get_by_role("heading", name=re.compile(rf"^{key} ·"))
    )


def test_a_pending_check_turns_green_on_the_card(page: Page) -> None:
    send(page, "/release deploy tax-api v1.4.2 to staging")
    expect(card(page, "R-1")).to_contain_text("Succeeded", timeout=15_000)
    send(page, "/release deploy tax-api v1.4.2 to production")
    r2 = card(page, "R-2")
    expect(r2).to_contain_text("Awaiting approval")
    expect(r2).to_contain_text("pending — Approve waits for them")
    expect(r2).to_contain_text(re.compile(r"✓\s*ci"))
    expect(r2).to_contain_text(re.compile(r"⏳\s*codeql"))
    expect(r2).to_contain_text("What ships")  # the diff, before approval
    # the scan settles 20 s after its first read; the bot reads it again every poll
    expect(r2).to_contain_text("all green", timeout=60_000)
    expect(r2).to_contain_text(re.compile(r"✓\s*codeql"))
    expect(r2).not_to_contain_text("⏳")


def test_a_failed_check_is_crossed_on_the_card(page: Page) -> None:
    send(page, "/release deploy tax-web v1.4.2 to staging")
    expect(card(page, "R-1")).to_contain_text("Succeeded", timeout=15_000)
    send(page, "/release deploy tax-web v1.4.2 to production")
    r2 = card(page, "R-2")
    expect(r2).to_contain_text(re.compile(r"⏳\s*codeql"))
    expect(r2).to_contain_text(re.compile(r"✗\s*codeql"), timeout=60_000)
    expect(r2).to_contain_text("not passed — Approve is refused")
