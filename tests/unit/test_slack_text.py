"""The one escaping module: outside text renders as itself, markup only from checked ids."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.logs import configure
from bot.slack import text
from bot.slack.text import code, escape, link, mention, mention_any, plain, scrub, who


@pytest.fixture(autouse=True)
def _no_secrets() -> Iterator[None]:
    yield
    text.set_secrets(())


def test_escape_turns_slack_control_characters_into_entities_ampersand_first() -> None:
    assert escape("<!channel> & <@U1|x>") == "&lt;!channel&gt; &amp; &lt;@U1|x&gt;"
    assert escape("&lt;") == "&amp;lt;"  # what was typed is shown, not decoded


def test_mentions_only_from_ids_that_look_like_slack_ids() -> None:
    assert mention("U0ALICE") == "<@U0ALICE>"
    assert mention("<!channel>") == "&lt;!channel&gt;"
    assert mention("u0alice") == "u0alice"
    assert mention_any("S0RELEASEMGRS") == "<!subteam^S0RELEASEMGRS>"
    assert who("releasebot") == "releasebot" and who("U0BOB") == "<@U0BOB>"


def test_code_and_links_cannot_be_broken_out_of() -> None:
    assert code("v1`<!here>") == "`v1'&lt;!here&gt;`"
    assert code("") == ""
    assert link("javascript:alert(1)", "<b>") == "&lt;b&gt;"  # not a link at all
    assert link("https://ci.example/run/1", "ci | ok") == "<https://ci.example/run/1|ci ¦ ok>"


def test_logging_set_up_also_scrubs_what_slack_is_shown() -> None:
    configure("INFO", "json", ["xoxb-secret-token-123"])
    assert scrub("token xoxb-secret-token-123 leaked") == "token [redacted] leaked"
    assert plain("<xoxb-secret-token-123>") == "&lt;[redacted]&gt;"


def test_token_shaped_text_is_scrubbed_even_when_the_token_is_not_ours() -> None:
    assert (
        scrub("Slack said xoxb-1234-5678-AbCdEf in the reply")
        == "Slack said [redacted] in the reply"
    )
    assert scrub("xoxp-1-2-3-abcdef, xapp-1-A0-123-ffff") == "[redacted], [redacted]"
    assert scrub("Authorization: Bearer eyJhbGciOi.J9-x_y") == "Authorization: Bearer [redacted]"
    assert scrub("bearer  0123456789abcdef0123") == "bearer [redacted]"
    # Words that only look a little like one stay.
    for kept in ("xoxo-hugs", "bearer authorization required", "xoxb-", "`1a2b3c4d` v1.4.2"):
        assert scrub(kept) == kept
    assert (
        plain("<https://x.example|Bearer 0123456789abcdef>")
        == "&lt;https://x.example|Bearer [redacted]&gt;"
    )
