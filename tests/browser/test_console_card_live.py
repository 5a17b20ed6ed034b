"""A rolling release's card in the browser console: the split bar, the step and a gate
countdown that counts on by itself; Roll back asks "are you sure?" before the click is sent.

The card is the bot's own rendering of a release baking at 10 %, put straight into the
Slack stand-in; each test leaves a screenshot in ``test-artifacts/browser/``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from bot.dev.slack_standin import BOT_USER_ID, Message
from bot.engine.model import Release, Step, StepStatus, Strategy
from bot.engine.states import State
from bot.slack.blocks.card import CardLive, release_card
from tests.browser.conftest import ARTIFACTS
from tests.browser.stack import DevStack

pytestmark = pytest.mark.browser

RELEASES = "C0RELEASES"
NEW, STABLE = "1a2b3c4d" + "0" * 28, "9f8e7d6c" + "0" * 28


def rolling_card(stack: DevStack) -> None:
    now = datetime.now(UTC)
    release = Release(
        service="tax-api",
        environment="production",
        script="tax-api",
        version_id=NEW,
        version_tag="v1.4.2",
        requested_by="U0CAROL",
        policy="production",
        strategy=Strategy.GRADUAL,
        plan=(10, 50, 100),
        state=State.VERIFYING,
        stable_version_id=STABLE,
        current_step=0,
        created_at=now - timedelta(seconds=80),
        id=77,
        steps=[Step(0, 10, StepStatus.DEPLOYED, "dep-1", deployed_at=now - timedelta(seconds=80))],
    )
    live = CardLive(
        account_id=stack.config.cloudflare.account_id,
        bakes=(timedelta(minutes=5),) * 3,
        now=now,
    )
    text, blocks = release_card(release, live=live)

    async def add() -> None:
        stack.slack.messages.append(
            Message(RELEASES, stack.slack.next_ts(), BOT_USER_ID, text, blocks=blocks)
        )
        await stack.slack.notify()

    stack.call(add())


def open_card(page: Page, stack: DevStack) -> None:
    rolling_card(stack)
    page.goto(f"{stack.console_url}/?as=alice")
    expect(page.locator("#live.on")).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile("^R-77 ·"))).to_be_visible()


def test_the_split_bar_and_the_gate_countdown(page: Page, stack: DevStack) -> None:
    open_card(page, stack)
    card = page.locator("#messages article.msg").filter(has_text="R-77")
    expect(card).to_contain_text("▓░░░░░░░░░ 10 % new · 90 % 9f8e7d6c")
    expect(card).to_contain_text("Step 1 of 3 (10%)")
    countdown = card.locator("time[data-ago]").first
    expect(countdown).to_have_text(re.compile(r"^in 3m \d\ds$"))
    first = countdown.text_content()
    expect(countdown).not_to_have_text(first or "", timeout=3_000)  # it counts on
    expect(card).to_contain_text("Elapsed:")
    expect(card).to_contain_text("ETA 100 % verified:")
    dash = card.get_by_role("link", name="tax-api deployments in the Cloudflare dashboard")
    expect(dash).to_have_attribute(
        "href", re.compile(r"^https://dash\.cloudflare\.com/[0-9a-f]{32}/workers/services/view/")
    )


def test_roll_back_asks_before_it_is_sent(page: Page, stack: DevStack) -> None:
    actions: list[str] = []
    page.on("request", lambda r: actions.append(r.url) if "/api/action" in r.url else None)
    open_card(page, stack)
    card = page.locator("#messages article.msg").filter(has_text="R-77")
    card.get_by_role("button", name="Roll back").click()
    dialog = page.get_by_role("dialog", name="Roll back R-77?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("9f8e7d6c at once, at 100 %")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "confirm_roll_back.png"))
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    page.wait_for_timeout(300)
    assert actions == []  # cancelled: nothing was sent

    card.get_by_role("button", name="Promote").click()
    dialog = page.get_by_role("dialog", name="Promote R-77 to 100 %?")
    expect(dialog).to_contain_text("skips every remaining bake (50%)")
    dialog.get_by_role("button", name="Promote to 100 %").click()
    expect(dialog).to_be_hidden()
    page.wait_for_timeout(500)
    assert len(actions) == 1  # confirmed: the click went out
