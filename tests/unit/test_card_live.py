"""The card's live view pieces and how the consoles show Slack's ``{ago}`` dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.dev.render import plain
from bot.dev.web_mrkdwn import mrkdwn, relative_time
from bot.durations import format_duration
from bot.slack.blocks.card import ago, dashboard_url, split_bar


def test_split_bar_shows_tenths_and_never_rounds_a_share_away() -> None:
    assert split_bar(10) == "`▓░░░░░░░░░` 10 % new"
    assert split_bar(50) == "`▓▓▓▓▓░░░░░` 50 % new"
    assert split_bar(1) == "`▓░░░░░░░░░` 1 % new"
    assert split_bar(99) == "`▓▓▓▓▓▓▓▓▓░` 99 % new"
    assert split_bar(100) == "`▓▓▓▓▓▓▓▓▓▓` 100 % new"


def test_spans_and_ago_tokens() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert format_duration(timedelta(seconds=220)) == "3m 40s"
    assert format_duration(timedelta(hours=1, minutes=5)) == "1h 5m"
    token = ago(now + timedelta(seconds=220), now)
    assert token == f"<!date^{int(now.timestamp()) + 220}^{{ago}}|in 3m 40s>"
    assert ago(now - timedelta(seconds=12), now).endswith("|12s ago>")


def test_the_consoles_count_ago_from_now() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    epoch = int(now.timestamp()) + 220
    assert relative_time(epoch, now) == "in 3m 40s"
    html = mrkdwn(f"next gate <!date^{epoch}^{{ago}}|in 3m 40s>", {}, "UTC", now)
    assert 'data-ago="1"' in html and ">in 3m 40s</time>" in html
    future = int(datetime.now(UTC).timestamp()) + 3600 * 5 + 90
    assert plain(f"<!date^{future}^{{ago}}|stale>", {}) == "in 5h 1m"


def test_dashboard_url() -> None:
    account = "ab" * 16
    assert dashboard_url(account, "tax-api") == (
        f"https://dash.cloudflare.com/{account}/workers/services/view/tax-api"
        "/production/deployments"
    )
