"""The browser console end to end: a person in headless Chromium types slash commands, presses
the card's buttons and watches the simulated Cloudflare side, against the real bot."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.stack import DevStack

pytestmark = pytest.mark.browser

PEOPLE = {"carol": "U0CAROL", "alice": "U0ALICE", "bob": "U0BOB", "mallory": "U0MALLORY"}


def send(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name=re.compile("slash command"))
    box.fill(text)
    box.press("Enter")
    expect(box).to_have_value("")


def act_as(page: Page, name: str) -> None:
    page.get_by_label("Act as").select_option(PEOPLE[name])
    expect(page.locator("#role")).to_contain_text(name)
    expect(page.locator("#live.on")).to_be_visible()


def card(page: Page, key: str) -> Locator:
    return page.locator("article.msg:not(.reply)").filter(
        has=page.get_by_role("heading", name=re.compile(rf"^{key} ·"))
    )


def worker(page: Page, script: str) -> Locator:
    return page.locator(f'section.worker[data-script="{script}"]')


def test_staging_deploy_card_reaches_succeeded(page: Page) -> None:
    send(page, "/release deploy tax-api v1.4.2 to staging")

    r1 = card(page, "R-1")
    expect(r1).to_contain_text("R-1 · tax-api v1.4.2 → staging")
    expect(r1).to_contain_text("Succeeded", timeout=15_000)
    expect(r1).to_contain_text("@carol")  # <@U0CAROL> shown as a mention
    expect(r1.locator(".bk-field", has_text="Version").locator("code")).to_have_text(
        re.compile(r"^[0-9a-f]{8}$")
    )
    expect(r1).to_contain_text("(edited)")  # the card was edited in place, live


def test_mistyped_command_shows_usage_only_to_its_author(page: Page) -> None:
    send(page, "/release deploy tax-api")

    answer = page.locator("article.msg.ephemeral")
    expect(answer).to_have_count(1)
    expect(answer).to_contain_text("Only visible to you")
    expect(answer).to_contain_text("Usage: /release deploy <service> <version>")
    expect(page.locator("article.msg:not(.ephemeral)")).to_have_count(0)


def test_ephemerals_of_another_person_are_not_shown(page: Page) -> None:
    send(page, "/release status tax-api staging")  # answered through chat.postEphemeral
    mine = page.locator("article.msg.ephemeral")
    expect(mine).to_contain_text("Only visible to you")
    expect(mine).to_contain_text("v1.4.1")

    act_as(page, "alice")
    expect(page.locator("article.msg")).to_have_count(0)
    send(page, "/release help")
    expect(page.locator("article.msg.ephemeral")).to_have_count(1)
    expect(page.locator("article.msg.ephemeral")).to_contain_text("/release deploy")
    expect(page.locator("article.msg.ephemeral")).not_to_contain_text("v1.4.1")

    act_as(page, "carol")
    expect(page.locator("article.msg.ephemeral")).to_have_count(1)
    expect(page.locator("article.msg.ephemeral")).to_contain_text("v1.4.1")


def test_side_panel_shows_split_and_a_bad_version(page: Page, stack: DevStack) -> None:
    staging = worker(page, "tax-api-staging")
    expect(staging.get_by_role("img", name=re.compile("Live split"))).to_have_attribute(
        "aria-label", "Live split: v1.4.1 100%"
    )

    send(page, "/release deploy tax-api v1.4.2 to staging")
    expect(card(page, "R-1")).to_contain_text("Succeeded", timeout=15_000)
    expect(staging.get_by_role("img", name=re.compile("Live split"))).to_have_attribute(
        "aria-label", "Live split: v1.4.2 100%"
    )

    production = worker(page, "tax-api")
    production.get_by_role("button", name="Make bad: tax-api v1.4.2").click()
    row = production.locator("tr", has_text="v1.4.2")
    expect(row.locator(".errors")).to_contain_text("25.0%")
    expect(row.locator(".errors")).to_contain_text("unhealthy")
    new = stack.cf.version_id("tax-api", "v1.4.2")
    assert stack.cf.version("tax-api", new).error_rate == pytest.approx(0.25)
    assert stack.cf.version("tax-api", new).healthy is False
    expect(production.get_by_role("button", name="Make good: tax-api v1.4.2")).to_be_focused()


def _through_staging(page: Page) -> None:
    """Production takes only a version that has succeeded in staging: R-1 does that."""
    send(page, "/release deploy tax-api v1.4.2 to staging")
    expect(card(page, "R-1")).to_contain_text("Succeeded", timeout=15_000)


def _approve_twice(page: Page, key: str) -> Locator:
    r = card(page, key)
    expect(r).to_contain_text("Awaiting approval")
    for approver in ("alice", "bob"):
        act_as(page, approver)
        approve = card(page, key).get_by_role("button", name="Approve")
        approve.click()
    return card(page, key)


def test_production_release_with_two_approvals_walks_to_100(page: Page, stack: DevStack) -> None:
    _through_staging(page)
    send(page, "/release deploy tax-api v1.4.2 to production")

    r2 = _approve_twice(page, "R-2")
    expect(r2).to_contain_text(re.compile("Deploying|Verifying|Succeeded"), timeout=10_000)
    expect(r2).to_contain_text("Succeeded", timeout=20_000)
    expect(r2.get_by_role("button", name="Approve")).to_have_count(0)
    expect(
        worker(page, "tax-api").get_by_role("img", name=re.compile("Live split"))
    ).to_have_attribute("aria-label", "Live split: v1.4.2 100%")


def test_bad_version_is_rolled_back(page: Page, stack: DevStack) -> None:
    _through_staging(page)
    # errors under traffic, while its health check still passes: the rollout gate catches it
    worker(page, "tax-api").get_by_role("button", name="Errors: tax-api v1.4.2").click()
    expect(worker(page, "tax-api").locator("tr", has_text="v1.4.2")).to_contain_text("25.0%")
    send(page, "/release deploy tax-api v1.4.2 to production")

    r2 = _approve_twice(page, "R-2")
    expect(r2).to_contain_text("Rolled back", timeout=30_000)
    expect(page.locator("#messages")).to_contain_text(re.compile("rolled back"), timeout=5_000)
    expect(
        worker(page, "tax-api").get_by_role("img", name=re.compile("Live split"))
    ).to_have_attribute("aria-label", "Live split: v1.4.1 100%")


def test_reject_asks_for_a_reason_in_a_modal(page: Page) -> None:
    _through_staging(page)
    send(page, "/release deploy tax-api v1.4.2 to production")
    expect(card(page, "R-2")).to_contain_text("Awaiting approval")

    act_as(page, "alice")
    card(page, "R-2").get_by_role("button", name="Reject").click()
    sure = page.get_by_role("dialog", name="Reject R-2?")  # the button's confirm first
    expect(sure).to_contain_text("will not be deployed")
    sure.get_by_role("button", name="Reject").click()
    dialog = page.get_by_role("dialog", name="Reject R-2", exact=True)
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Why is it rejected?")).to_be_focused()
    dialog.get_by_role("button", name="Reject").click()
    expect(dialog).to_contain_text("Say why.")  # the bot's response_action: errors
    dialog.get_by_label("Why is it rejected?").fill("breaks 1099 rounding")
    dialog.get_by_role("button", name="Reject").click()

    expect(dialog).to_be_hidden()
    expect(card(page, "R-2")).to_contain_text("Rejected", timeout=10_000)
    expect(card(page, "R-2")).to_contain_text("breaks 1099 rounding")
    expect(card(page, "R-2").locator("button[data-action]")).to_have_count(0)  # none to press
