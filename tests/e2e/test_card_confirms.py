"""The card's Roll back, Promote and Reject buttons carry a Block Kit confirm object that
says what the click does; checked against slack_sdk's Block Kit models."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, ConfirmObject

from tests.fixtures.bot import BotHarness, config_data


@pytest.fixture
def bot_config() -> dict[str, Any]:
    return config_data(bake="10m")  # the release stays at its first step


def button(bot: BotHarness, key: str, label: str) -> ButtonElement:
    card = bot.card(key)
    assert card is not None
    for raw in card.blocks:
        block = Block.parse(raw)
        assert block is not None
        block.validate_json()
        if isinstance(block, ActionsBlock):
            for element in block.elements:
                if isinstance(element, ButtonElement) and element.text.text == label:
                    element.validate_json()
                    return element
    raise AssertionError(f"no {label} button on {key}'s card: {card.blocks}")


def confirm_of(element: ButtonElement) -> dict[str, Any]:
    """The button's confirm object, validated, as Slack receives it."""
    confirm = element.confirm
    assert isinstance(confirm, ConfirmObject), element.to_dict()
    confirm.validate_json()
    return confirm.to_dict()


def test_reject_asks_before_it_rejects(bot: BotHarness) -> None:
    bot.command("deploy tax-api v1.4.2 to production")
    bot.wait_for(lambda: (c := bot.card("R-1")) and "Reject" in str(c.blocks), what="the card")
    confirm = confirm_of(button(bot, "R-1", "Reject"))
    assert confirm["title"]["text"] == "Reject R-1?"
    assert "will not be deployed" in confirm["text"]["text"] and "v1.4.2" in confirm["text"]["text"]
    assert confirm.get("style") == "danger"
    assert button(bot, "R-1", "Approve").confirm is None


def test_roll_back_and_promote_say_what_they_do(bot: BotHarness) -> None:
    bot.cf.set_traffic("tax-api", 2000)
    stable = bot.cf.version_id("tax-api", "v1.4.1")
    bot.command("deploy tax-api v1.4.2 to production")
    bot.wait_for(lambda: (c := bot.card("R-1")) and "Approve" in str(c.blocks), what="the card")
    bot.click("Approve", "R-1", user="U0ALICE")
    bot.wait_for(lambda: "1 of 2" in str(bot.card("R-1").blocks), what="the first approval")
    bot.click("Approve", "R-1", user="U0BOB")
    bot.wait_for(lambda: "Roll back" in str(bot.card("R-1").blocks), timeout=20, what="rolling")

    back = confirm_of(button(bot, "R-1", "Roll back"))
    assert back["title"]["text"] == "Roll back R-1?"
    assert (
        f"goes back to v1.4.1 `{stable[:8]}`" in back["text"]["text"]
        and "100 %" in back["text"]["text"]
    )
    assert back.get("style") == "danger"
    assert back["confirm"]["text"] == "Roll back" and back["deny"]["text"] == "Cancel"

    promote = confirm_of(button(bot, "R-1", "Promote"))
    assert promote["title"]["text"] == "Promote R-1 to 100 %?"
    assert "skips every remaining bake (50%)" in promote["text"]["text"]
    assert "100 % of tax-api production traffic" in promote["text"]["text"]
    assert promote.get("style") is None
    assert button(bot, "R-1", "Pause").confirm is None
