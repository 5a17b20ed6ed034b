"""The browser console behaves like the Slack client a release manager knows: it opens on the
newest message and follows new ones, threads fold into "N replies" that open in a side pane,
answers only you see can be dismissed and are gone after a reload, the App Home tab shows
what the bot published, and the side panel uploads a new Worker version to try.

One stack and one browser tab for the whole module (each test leaves its own screenshot);
the tests use different services or releases so that they do not depend on each other.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from bot.dev.slack_standin import BOT_USER_ID, Message
from tests.browser.conftest import ARTIFACTS
from tests.browser.stack import DevStack

pytestmark = pytest.mark.browser

PEOPLE = {"carol": "U0CAROL", "alice": "U0ALICE", "bob": "U0BOB", "mallory": "U0MALLORY"}
RELEASES = "C0RELEASES"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    with DevStack(tmp_path_factory.mktemp("console"), bake="1s", stream_seconds=1.0) as running:
        yield running


@pytest.fixture(scope="module")
def tab(chromium: Any, stack: DevStack) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.on("request", lambda r: STREAMS.append(r.url) if "/api/stream" in r.url else None)
    yield page
    context.close()


STREAMS: list[str] = []  # every event stream the tab opened


@pytest.fixture
def page(tab: Page, request: pytest.FixtureRequest) -> Iterator[Page]:
    """The module's tab; a screenshot of where each test leaves it. The streams rotate every
    second here, and no test ever sees the "live" mark flip to "reconnecting…"."""
    yield tab
    seen = tab.evaluate("() => window.liveSeen || []")
    assert "reconnecting…" not in seen, seen
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    tab.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def open_console(page: Page, stack: DevStack, who: str = "carol", width: int = 1440) -> None:
    page.set_viewport_size({"width": width, "height": 800 if width < 1000 else 900})
    page.goto(f"{stack.console_url}/?as={who}")
    expect(page.locator("#live.on")).to_be_visible()
    page.evaluate(WATCH_LIVE)


WATCH_LIVE = """() => {
  window.liveSeen = [];
  const live = document.getElementById("live");
  new MutationObserver(() => window.liveSeen.push(live.textContent))
    .observe(live, {childList: true, characterData: true, subtree: true});
}"""


def send(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name=re.compile("slash command"))
    box.fill(text)
    box.press("Enter")
    expect(box).to_have_value("")


def card(page: Page, key: str) -> Locator:
    return page.locator("#messages article.msg:not(.reply)").filter(
        has=page.get_by_role("heading", name=re.compile(rf"^{key} ·"))
    )


def post(stack: DevStack, text: str, channel: str = RELEASES, **extra: Any) -> Message:
    """A message as the bot would post it, straight into the Slack stand-in."""

    async def add() -> Message:
        msg = Message(channel, stack.slack.next_ts(), BOT_USER_ID, text, **extra)
        stack.slack.messages.append(msg)
        await stack.slack.notify()
        return msg

    added: Message = stack.call(add())
    return added


def scroll_state(page: Page) -> dict[str, float]:
    state: dict[str, float] = page.locator("#messages").evaluate(
        "m => ({top: m.scrollTop, height: m.scrollHeight, client: m.clientHeight})"
    )
    return state


def at_bottom(page: Page) -> bool:
    s = scroll_state(page)
    return s["top"] + s["client"] >= s["height"] - 2


def test_opens_on_the_newest_message_and_follows_new_cards(page: Page, stack: DevStack) -> None:
    for i in range(40):
        post(stack, f"Earlier note {i}: nothing to see")
    open_console(page, stack)
    assert scroll_state(page)["height"] > scroll_state(page)["client"] * 2  # a long channel
    expect(page.locator("#messages")).to_contain_text("Earlier note 39")
    assert at_bottom(page), scroll_state(page)
    expect(page.get_by_text("Earlier note 39")).to_be_in_viewport()

    send(page, "/release deploy tax-web v1.4.2 to staging")
    new_card = card(page, "R-1")
    expect(new_card).to_contain_text("Succeeded", timeout=15_000)
    expect(new_card.locator(".bk-header")).to_be_in_viewport()
    page.wait_for_function(
        "() => { const m = document.getElementById('messages');"
        " return m.scrollTop + m.clientHeight >= m.scrollHeight - 2; }"
    )

    # Reading older messages: a new one does not pull the channel away from them.
    page.locator("#messages").evaluate("m => { m.scrollTop = 0; }")
    expect(page.get_by_text("Earlier note 0", exact=False)).to_be_in_viewport()
    post(stack, "A newer note while you read")
    jump = page.get_by_role("button", name=re.compile("New messages"))
    expect(jump).to_be_visible()
    assert scroll_state(page)["top"] == 0
    jump.click()
    expect(page.get_by_text("A newer note while you read")).to_be_in_viewport()
    expect(jump).to_be_hidden()


def act_as(page: Page, name: str) -> None:
    page.get_by_label("Act as").select_option(PEOPLE[name])
    expect(page.locator("#role")).to_contain_text(name)
    expect(page.locator("#live.on")).to_be_visible()


def test_a_thread_folds_into_replies_and_opens_in_a_side_pane(page: Page, stack: DevStack) -> None:
    open_console(page, stack)
    send(page, "/release deploy tax-api v1.4.2 to staging")
    expect(card(page, "R-2")).to_contain_text("Succeeded", timeout=15_000)
    send(page, "/release deploy tax-api v1.4.2 to production")
    expect(card(page, "R-3")).to_contain_text("Awaiting approval")
    act_as(page, "alice")
    card(page, "R-3").get_by_role("button", name="Approve").click()

    replies = card(page, "R-3").locator("button.thread-link")
    expect(replies).to_have_text(re.compile(r"^\d+ repl(y|ies)$"))
    expect(page.locator("#messages")).not_to_contain_text("approved R-3")  # not inline
    replies.click()
    pane = page.get_by_role("complementary", name=re.compile("^Thread"))
    expect(pane).to_be_visible()
    expect(page.locator("aside.cloudflare")).to_be_hidden()
    expect(pane.locator("article.parent")).to_contain_text("R-3 · tax-api v1.4.2 → production")
    expect(pane.locator("article.reply").last).to_contain_text("@alice approved R-3 (1 of 2)")
    expect(pane.get_by_role("button", name="Close thread")).to_be_focused()

    act_as(page, "bob")  # the pane closes with the switch; bob opens it again
    expect(pane).to_be_hidden()
    replies.click()
    # the card's buttons work in the pane, and so do those of the approval request in it
    expect(pane.get_by_role("button", name="Reject")).to_have_count(2)
    pane.locator("article.parent").get_by_role("button", name="Reject").click()
    sure = page.get_by_role("dialog", name="Reject R-3?")  # the button's confirm first
    expect(sure).to_contain_text("will not be deployed")
    sure.get_by_role("button", name="Reject").click()
    dialog = page.get_by_role("dialog", name="Reject R-3", exact=True)
    dialog.get_by_label("Why is it rejected?").fill("wrong build")
    dialog.get_by_role("button", name="Reject").click()
    expect(pane).to_contain_text("rejected by @bob: wrong build")  # and it updates live
    expect(replies).to_have_text(re.compile(r"^\d+ replies$"))
    page.screenshot(path=str(ARTIFACTS / "thread_pane_open.png"))

    page.keyboard.press("Escape")
    expect(pane).to_be_hidden()
    expect(page.locator("aside.cloudflare")).to_be_visible()
    expect(replies).to_be_focused()
    act_as(page, "carol")


def test_answers_only_you_see_can_be_dismissed_and_go_with_a_reload(
    page: Page, stack: DevStack
) -> None:
    open_console(page, stack)
    expect(page.locator("article.msg.ephemeral")).to_have_count(0)  # none from earlier tests
    send(page, "/release status tax-web staging")  # answered through chat.postEphemeral
    send(page, "/release deploy tax-web")  # a usage error, answered on the ack
    mine = page.locator("#messages article.msg.ephemeral")
    expect(mine).to_have_count(2)
    status = mine.filter(has_text="v1.4.2")
    usage = mine.filter(has_text="Usage: /release deploy")
    expect(status).to_contain_text("Only visible to you")

    status.get_by_role("button", name="Dismiss message").click()
    expect(status).to_have_count(0)
    expect(usage).to_have_count(1)
    expect(page.get_by_role("textbox", name=re.compile("slash command"))).to_be_focused()
    page.screenshot(path=str(ARTIFACTS / "ephemeral_after_dismiss.png"))

    page.reload()
    expect(page.locator("#live.on")).to_be_visible()
    expect(card(page, "R-1")).to_be_visible()  # the channel is still there...
    expect(page.locator("article.msg.ephemeral")).to_have_count(0)  # ...its ephemerals are not
    send(page, "/release help")
    expect(page.locator("article.msg.ephemeral")).to_have_count(1)


def open_messages_with_the_bot(page: Page) -> None:
    page.locator("#channels").get_by_role("button", name=re.compile("releasebot")).click()
    expect(page.locator("#channel-title")).to_have_text("@releasebot")


def test_a_channel_named_in_a_direct_message_reads_inline(page: Page, stack: DevStack) -> None:
    post(stack, ":raised_hand: R-9 needs 2 approvals. Its card is in <#C0RELEASES>.", "U0CAROL")
    open_console(page, stack)
    open_messages_with_the_bot(page)
    text = page.locator("#messages .bk-text", has_text="R-9 needs 2 approvals")
    mention = text.locator(".mention", has_text="#releases")
    expect(mention).to_be_visible()
    assert mention.evaluate("e => getComputedStyle(e).display") == "inline"
    box, line = mention.bounding_box(), text.bounding_box()
    assert box is not None and line is not None
    assert box["width"] < 100 < line["width"], (box, line)  # a word, not a bar
    assert box["height"] < 30 and line["height"] < 30, (box, line)  # on the sentence's line
    expect(text).to_contain_text("✋ R-9 needs 2 approvals. Its card is in #releases.")


def test_the_live_mark_stays_live_while_streams_rotate(page: Page, stack: DevStack) -> None:
    open_console(page, stack)
    opened = len(STREAMS)
    for _ in range(2):  # the server ends a stream every second here; the page opens the next
        page.wait_for_event("request", lambda r: "/api/stream" in r.url, timeout=5_000)
    expect(page.locator("#live")).to_have_text("live")
    assert len(STREAMS) >= opened + 2, STREAMS
    send(page, "/release help")  # and the page still gets what happens
    expect(page.locator("article.msg.ephemeral")).to_contain_text("/release deploy")
    assert set(page.evaluate("() => window.liveSeen")) <= {"live"}


OVERFLOW = """(sel) => [...document.querySelectorAll(sel)].flatMap((box) => {
  const edge = box.getBoundingClientRect();
  const out = [...box.querySelectorAll("*")].filter((e) => {
    const r = e.getBoundingClientRect();
    return r.width && (r.right > edge.right + 0.5 || r.left < edge.left - 0.5);
  }).map((e) => e.outerHTML.slice(0, 60));
  if (box.scrollWidth > box.clientWidth) out.push(`${sel} scrolls sideways`);
  return out;
})"""


def test_the_side_panel_fits_a_900_pixel_window(page: Page, stack: DevStack) -> None:
    open_console(page, stack, width=900)
    expect(page.locator("section.worker").first).to_be_visible()
    assert page.evaluate(OVERFLOW, "aside.cloudflare") == []
    assert page.evaluate(OVERFLOW, "section.worker") == []  # nothing sticks out of a card
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 900
    page.screenshot(path=str(ARTIFACTS / "console_900px.png"))
    for name in ("Errors: tax-api v1.4.0", "Make bad: tax-api v1.4.0"):
        expect(page.get_by_role("button", name=name)).to_be_visible()
    page.set_viewport_size({"width": 1440, "height": 900})


def test_the_side_panel_uploads_a_version_to_try(page: Page, stack: DevStack) -> None:
    open_console(page, stack)
    form = page.get_by_role("form", name="Upload a version")
    form.get_by_role("combobox", name="Worker").select_option("tax-web-staging")
    form.get_by_role("textbox", name="Tag").fill("v1.5.0")
    form.get_by_role("textbox", name="Message").fill("Faster refunds")
    form.get_by_role("radio", name="errors").check()
    form.get_by_role("button", name="Upload").click()
    expect(page.locator("#toast")).to_contain_text("Uploaded v1.5.0 to tax-web-staging")
    row = page.locator('section.worker[data-script="tax-web-staging"] tr', has_text="v1.5.0")
    expect(row.locator(".errors")).to_contain_text("25.0%")
    uploaded = stack.cf.version("tax-web-staging", stack.cf.version_id("tax-web-staging", "v1.5.0"))
    assert uploaded.message == "Faster refunds" and uploaded.error_rate == pytest.approx(0.25)
    assert uploaded.author_email == "carol@example.com" and uploaded.healthy is True
    page.screenshot(path=str(ARTIFACTS / "uploaded_version.png"))

    send(page, "/release deploy tax-web v1.5.0 to staging")  # the bot finds it by its tag
    expect(page.locator("#messages")).to_contain_text("tax-web v1.5.0 → staging")


def test_app_home_shows_the_view_the_bot_publishes(page: Page, stack: DevStack) -> None:
    open_console(page, stack, who="alice")
    send(page, "/release deploy tax-web v1.4.2 to production")  # staged by the first test
    published = len(stack.slack.calls_to("views.publish"))
    page.get_by_role("button", name="releasebot Home").click()
    home = page.get_by_role("region", name="releasebot Home")
    # the Home view reads every target's live deployment through the Cloudflare call budget
    # (2 a second), which the module's earlier releases have drawn down: allow it the wait
    expect(home).to_contain_text("Waiting for your approval", timeout=40_000)
    expect(home).to_contain_text("In flight")
    expect(home.locator(".bk-header", has_text="Live")).to_be_visible()
    assert len(stack.slack.calls_to("views.publish")) == published + 1
    assert stack.slack.home["U0ALICE"]["type"] == "home"
    page.screenshot(path=str(ARTIFACTS / "app_home.png"))
    page.locator("#channels").get_by_role("button", name=re.compile("releases")).click()
    expect(home).to_be_hidden()
    expect(page.locator("#messages")).to_be_visible()
