"""A rolling release's card shows the live split, the step, a countdown to the next gate,
the elapsed time, the ETA and a link to the Worker's deployments in the Cloudflare
dashboard; a direct message about a release links its card's permalink."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from tests.fixtures.bot import ACCOUNT, BotHarness, config_data


@pytest.fixture
def bot_config() -> dict[str, Any]:
    return config_data(bake="10m")  # the release stays at its first step


def rolling(bot: BotHarness) -> str:
    """carol's production deploy, approved and baking at 10 %: its card as mrkdwn."""
    bot.cf.set_traffic("tax-api", 2000)
    bot.command("deploy tax-api v1.4.2 to production")
    bot.wait_for(lambda: (c := bot.card("R-1")) and "Approve" in str(c.blocks), what="the card")
    bot.click("Approve", "R-1", user="U0ALICE")
    bot.wait_for(lambda: "1 of 2" in str(bot.card("R-1").blocks), what="the first approval")
    bot.click("Approve", "R-1", user="U0BOB")
    bot.wait_for(lambda: "next gate" in str(bot.card("R-1").blocks), timeout=20, what="10 %")
    card = bot.card("R-1")
    assert card is not None
    for raw in card.blocks:
        parsed = Block.parse(raw)
        assert parsed is not None
        parsed.validate_json()
    return str(card.blocks)


def test_the_card_of_a_rolling_release_shows_it_live(bot: BotHarness) -> None:
    before = int(time.time())
    stable = bot.cf.version_id("tax-api", "v1.4.1")
    text = rolling(bot)

    assert "`▓░░░░░░░░░` 10 % new" in text
    assert f"90 % `{stable[:8]}`" in text
    assert "*Step 1 of 3* (10%)" in text
    gate = re.search(r"next gate <!date\^(\d+)\^\{ago\}\|in (\d+)m \d\ds>", text)
    assert gate, text
    # the gate is judged when the 10 % bake of 10 minutes ends
    assert before + 590 <= int(gate[1]) <= time.time() + 600
    assert int(gate[2]) in (9, 10)
    assert re.search(r"\*Elapsed:\* \d+s \(started <!date\^\d+\^\{ago\}\|\d+s ago>\)", text)
    eta = re.search(
        r"\*ETA 100 % verified:\* <!date\^(\d+)\^\{date_short_pretty\} at \{time\}\|[^>]+>", text
    )
    assert eta, text
    # three bakes of 10 minutes: 10 %, 50 % and 100 %
    assert int(eta[1]) - int(gate[1]) == 1200
    dash = f"https://dash.cloudflare.com/{ACCOUNT}/workers/services/view/tax-api/production/deployments"
    assert f"<{dash}|tax-api deployments in the Cloudflare dashboard>" in text


def test_paused_release_says_its_gate_waits(bot: BotHarness) -> None:
    rolling(bot)
    bot.click("Pause", "R-1", user="U0ALICE")
    bot.wait_for(lambda: "the gate waits for Resume" in str(bot.card("R-1").blocks), what="pause")
    assert "ETA" not in str(bot.card("R-1").blocks)


def test_a_direct_message_links_the_card(bot: BotHarness) -> None:
    bot.command("deploy tax-api v1.4.2 to production")
    card = bot.wait_for(lambda: bot.card("R-1"), what="the card")
    said = bot.wait_for(
        lambda: [m.text for m in bot.slack.channel_messages("U0CAROL") if "needs 2" in m.text],
        what="the DM asking for approvals",
    )[-1]
    link = f"https://battleborn.example/archives/{card.channel}/p{card.ts.replace('.', '')}"
    assert said.endswith(f"needs 2 approvals. <{link}|Open its card>."), said
    assert "Its card is in" not in said
