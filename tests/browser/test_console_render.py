"""Slack mrkdwn and Block Kit as the browser console renders them (no browser needed)."""

from __future__ import annotations

import re
import tokenize
from datetime import UTC, datetime
from pathlib import Path

from bot.dev.slack_standin import Message
from bot.dev.web_blocks import BlockRenderer, find_button, input_types
from bot.dev.web_mrkdwn import EMOJI, format_date, mrkdwn
from bot.dev.web_view import ChannelView, Person, cloudflare_panel
from bot.slack import ids

USERS = {"U0ALICE": {"name": "alice"}, "U0CAROL": {"name": "carol"}}
NOW = datetime(2024, 3, 5, 18, 0, tzinfo=UTC)


def test_emphasis_code_and_emoji() -> None:
    html = mrkdwn("*State*\n:rocket: _now_ ~10%~ → `1a2b3c4d` :not_an_emoji:", USERS)
    assert html == (
        "<b>State</b><br>🚀 <i>now</i> <s>10%</s> → <code>1a2b3c4d</code> :not_an_emoji:"
    )


def shortcodes_in_bot_strings() -> set[str]:
    """Every ``:name:`` in a string literal of the bot outside bot/dev/ (not Sphinx roles)."""
    found: set[str] = set()
    for path in (Path(__file__).resolve().parents[2] / "bot").rglob("*.py"):
        # bot/dev/ is the console itself; the Cloudflare simulator writes no Slack text (its
        # sqlite3 ":memory:" is a file name)
        if "dev" in path.parts or path.name.startswith("sim_"):
            continue
        with path.open("rb") as source:
            for token in tokenize.tokenize(source.readline):
                if token.type == tokenize.STRING:
                    found.update(
                        re.findall(r"(?<![\w:]):([a-z][a-z0-9_+-]*):(?![\w`])", token.string)
                    )
    return found


def test_every_emoji_the_bot_writes_is_shown_as_one() -> None:
    codes = shortcodes_in_bot_strings() | {"pause_button", "arrow_forward"}  # f":{icon}:"
    assert {"white_check_mark", "rewind", "grey_question", "repeat"} <= codes  # the scan works
    assert sorted(c for c in codes if c not in EMOJI) == []
    assert mrkdwn(":pause_button: paused · :arrow_forward: resumed", USERS) == (
        "⏸️ paused · ▶️ resumed"
    )


def test_markup_inside_words_and_code_is_left_alone() -> None:
    assert mrkdwn("snake_case_name 2*3*4", USERS) == "snake_case_name 2*3*4"
    assert mrkdwn("`*not bold* <@U0ALICE>`", USERS) == "<code>*not bold* @alice</code>"


def test_mentions_channels_links_and_groups() -> None:
    html = mrkdwn(
        "<@U0ALICE> <@U0NOBODY> <#C0RELEASES> <#C0X|ops> <!subteam^S0RELEASEMGRS> "
        "<https://example.com/?a=1&amp;b=2|the docs>",
        USERS,
    )
    assert '<span class="mention" data-user="U0ALICE">@alice</span>' in html
    assert "@U0NOBODY" in html
    assert "#releases" in html and "#ops" in html and "@releasemgrs" in html
    assert '<a href="https://example.com/?a=1&amp;b=2"' in html and ">the docs</a>" in html


def test_dates_in_the_viewers_timezone_with_fallback() -> None:
    stamp = int(datetime(2024, 3, 5, 17, 30, tzinfo=UTC).timestamp())
    text = f"<!date^{stamp}^{{date_short_pretty}} {{time}}|2024-03-05 17:30 UTC>"
    assert ">Today 9:30 AM</time>" in mrkdwn(text, USERS, "America/Los_Angeles", NOW)
    assert ">Today 12:30 PM</time>" in mrkdwn(text, USERS, "America/New_York", NOW)
    assert format_date(stamp, "{date_num} {time_secs}", "UTC") == "2024-03-05 5:30:00 PM"
    assert format_date(stamp, "{date_long}", "UTC") == "Tuesday, March 5th, 2024"
    unknown = f"<!date^{stamp}^{{weird}}|the fallback>"
    assert ">the fallback</time>" in mrkdwn(unknown, USERS)


def test_text_can_never_inject_markup() -> None:
    html = mrkdwn('&lt;img src=x onerror=alert(1)&gt; <script>x</script> "q" &amp;', USERS)
    assert "<img" not in html and "<script" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&amp;" in html
    blocks = BlockRenderer(USERS).blocks(
        [{"type": "header", "text": {"type": "plain_text", "text": "<b>R-1</b>"}}]
    )
    assert "&lt;b&gt;R-1&lt;/b&gt;" in blocks


def test_quotes() -> None:
    assert mrkdwn("&gt; one\n&gt; two\nafter", USERS) == (
        "<blockquote>one<br>two</blockquote>after"
    )


CARD = [
    {"type": "header", "text": {"type": "plain_text", "text": "R-1 · tax-api v1.4.2 → production"}},
    {
        "type": "section",
        "fields": [
            {"type": "mrkdwn", "text": "*State*\n:raised_hand: Awaiting approval"},
            {"type": "mrkdwn", "text": "*Requested by*\n<@U0CAROL>"},
        ],
    },
    {"type": "context", "elements": [{"type": "mrkdwn", "text": "_Faster receipt search_"}]},
    {"type": "divider"},
    {
        "type": "actions",
        "block_id": "card-1",
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Approve"},
                "action_id": ids.APPROVE,
                "value": "1:abc",
                "style": "primary",
            },
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Reject"},
                "action_id": ids.REJECT,
                "value": "1:abc",
                "style": "danger",
            },
        ],
    },
    {"type": "rich_text", "elements": []},
]


def test_card_blocks() -> None:
    html = BlockRenderer(USERS).blocks(CARD, "C0RELEASES:1.000001")
    assert 'role="heading"' in html and "R-1 · tax-api v1.4.2 → production" in html
    assert '<div class="bk-field"><b>State</b><br>✋ Awaiting approval</div>' in html
    assert '<div class="bk-context"><span><i>Faster receipt search</i></span></div>' in html
    assert '<hr class="bk-divider">' in html
    assert (
        '<button type="button" class="bk-btn bk-primary" data-message="C0RELEASES:1.000001" '
        f'data-block="card-1" data-action="{ids.APPROVE}">Approve</button>'
    ) in html
    assert 'class="bk-btn bk-danger"' in html
    assert "1:abc" not in html  # values stay on the server; the console looks them up
    assert "[rich_text block]" in html
    assert find_button(CARD, "card-1", ids.REJECT)["value"] == "1:abc"  # type: ignore[index]
    assert find_button(CARD, "card-2", ids.REJECT) is None


REJECT_VIEW = {
    "id": "V00000001",
    "type": "modal",
    "callback_id": ids.REJECT_MODAL,
    "title": {"type": "plain_text", "text": "Reject R-1"},
    "submit": {"type": "plain_text", "text": "Reject"},
    "blocks": [
        {
            "type": "input",
            "block_id": ids.REJECT_REASON_BLOCK,
            "label": {"type": "plain_text", "text": "Why?"},
            "hint": {"type": "plain_text", "text": "The requester sees this."},
            "element": {
                "type": "plain_text_input",
                "action_id": ids.REJECT_REASON_INPUT,
                "multiline": True,
                "max_length": 500,
            },
        }
    ],
}


def test_modal_inputs() -> None:
    view = BlockRenderer(USERS).view(REJECT_VIEW)
    assert view["title"] == "Reject R-1" and view["submit"] == "Reject"
    assert view["close"] == "Cancel"
    name = f"{ids.REJECT_REASON_BLOCK}/{ids.REJECT_REASON_INPUT}"
    assert f'name="{name}"' in view["html"] and "<textarea" in view["html"]
    assert 'maxlength="500"' in view["html"] and " required" in view["html"]
    assert "The requester sees this." in view["html"]
    types = input_types(REJECT_VIEW)
    assert types == {(ids.REJECT_REASON_BLOCK, ids.REJECT_REASON_INPUT): "plain_text_input"}


def test_threads_and_ephemerals() -> None:
    viewer = Person("U0CAROL", "carol", "a member", "UTC")
    card = Message("C0R", "1700000000.000001", "U0RELEASEBOT", "R-1", CARD[:1], edits=2)
    reply = Message("C0R", "1700000000.000002", "U0RELEASEBOT", "approved", [], "1700000000.000001")
    mine = Message("C0R", "1700000000.000003", "U0RELEASEBOT", "psst", ephemeral_for="U0CAROL")
    view = ChannelView(USERS, viewer)
    rows = view.messages([mine, reply, card])
    assert [r["id"] for r in rows] == ["m-C0R-1700000000-000001", "m-C0R-1700000000-000003"]
    # the thread folds into its "1 reply" link; the side pane shows the parent and the reply
    assert 'data-thread="C0R:1700000000.000001"' in rows[0]["html"]
    assert ">1 reply</button>" in rows[0]["html"] and "approved" not in rows[0]["html"]
    threads = view.threads([mine, reply, card])
    assert list(threads) == ["C0R:1700000000.000001"]
    pane = threads["C0R:1700000000.000001"]
    assert pane.index("msg parent") < pane.index("1 reply") < pane.index("approved")
    assert "(edited)" in rows[0]["html"]
    assert "Only visible to you" in rows[1]["html"] and "ephemeral" in rows[1]["html"]


def test_cloudflare_panel() -> None:
    overview = {
        "workers": [
            {
                "script": "tax-api",
                "service": "tax-api",
                "environment": "production",
                "split": [
                    {"id": "a" * 36, "short": "aaaaaaaa", "tag": "v1.4.2", "percentage": 10.0},
                    {"id": "b" * 36, "short": "bbbbbbbb", "tag": "v1.4.1", "percentage": 90.0},
                ],
                "versions": [
                    {
                        "id": "a" * 36,
                        "short": "aaaaaaaa",
                        "tag": "v1.4.2",
                        "error_rate": 0.25,
                        "healthy": False,
                        "percentage": 10.0,
                    }
                ],
            }
        ]
    }
    html = cloudflare_panel(overview)
    assert 'aria-label="Live split: v1.4.2 10% + v1.4.1 90%"' in html
    assert "25.0%" in html and "unhealthy" in html
    assert 'aria-label="Make good: tax-api v1.4.2"' in html and 'data-mode="good"' in html
    assert 'data-mode="bad"' not in html  # a bad version offers only to make it good again
