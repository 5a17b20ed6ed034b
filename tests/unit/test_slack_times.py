"""Times, ids and cuts as a release manager reads them in Slack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.engine.freezes import FreezeWindow, describe
from bot.engine.versions import short_id, short_ids
from bot.slack.blocks.common import clip, cut_lines
from bot.slack.render import words
from bot.slack.text import date_token

END = datetime(2026, 12, 5, tzinfo=UTC)


def test_one_date_token_with_a_utc_fallback() -> None:
    assert date_token(END) == (
        "<!date^1796428800^{date_short_pretty} at {time}|2026-12-05 00:00 UTC>"
    )
    assert date_token(END + timedelta(seconds=7), seconds=True).endswith(
        "at {time_secs}|2026-12-05 00:00:07 UTC>"
    )
    assert date_token(END.replace(tzinfo=None)) == date_token(END)  # naive is UTC


def test_a_freeze_end_is_a_date_token_and_its_setter_a_mention() -> None:
    window = FreezeWindow("set by", END, "release week", set_by="U0ALICE")
    assert str(describe(window)) == (
        "frozen until 2026-12-05 00:00 UTC (set by U0ALICE: release week)"
    )
    shown = words(describe(window))
    assert date_token(END) in shown
    assert "<@U0ALICE>" in shown


def test_short_ids_grow_until_they_differ() -> None:
    ids = ["259f4329-0001", "259f4329-0002", "1a2b3c4d-0003"]
    assert short_ids(ids) == {
        "259f4329-0001": "259f4329-0001",
        "259f4329-0002": "259f4329-0002",
        "1a2b3c4d-0003": "1a2b3c4d",
    }
    assert short_id("259f43290aaa", ["259f43291bbb"]) == "259f43290"
    assert short_id("259f43290aaa") == "259f4329"


def test_a_timeline_is_cut_at_a_line_with_what_was_left_out() -> None:
    lines = [f"- line {i} with several words in it" for i in range(100)]
    cut = cut_lines("\n".join(lines), 500)
    assert len(cut) <= 500
    shown = cut.split("\n")
    assert shown[:-1] == lines[: len(shown) - 1]  # whole lines only
    assert shown[-1] == f"… and {100 - (len(shown) - 1)} more lines"


def test_clip_ends_at_a_word_and_never_inside_a_token() -> None:
    assert clip("the quick brown fox jumps", 12) == "the quick…"
    text = "frozen until " + date_token(END)
    assert clip(text, 40) == "frozen until…"


def test_both_consoles_show_the_token_sensibly() -> None:
    from bot.dev.render import plain as terminal
    from bot.dev.web_mrkdwn import mrkdwn

    token = date_token(END)
    # the terminal shows the UTC fallback; the browser the reader's own time
    assert terminal(f"until {token}", {}) == "until 2026-12-05 00:00 UTC"
    html = mrkdwn(f"until {token}", {}, tz="Europe/Berlin", now=END)
    assert ">Today at 1:00 AM</time>" in html
    assert 'datetime="2026-12-05T00:00:00+00:00"' in html
