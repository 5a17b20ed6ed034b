"""The terminal console on its own, against a recording bot: which button ``click`` finds
(actions and accessories, never a context text), a ``confirm`` asked before anything is
sent, and a command that blows up reported on its line instead of ending the console."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from bot.dev.console import Console, card_key
from bot.dev.slack_standin import Message, StandinState

CHANNEL = "C0RELEASES"


def card(key: str, confirm: dict[str, Any] | None = None) -> Message:
    reject: dict[str, Any] = {
        "type": "button",
        "action_id": "release_reject",
        "value": f"{key[2:]}:abc",
        "text": {"type": "plain_text", "text": "Reject"},
    }
    if confirm:
        reject["confirm"] = confirm
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{key} · tax-api"}},
        # context elements are text objects, not buttons: their "text" is a string
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "Approve soon"}]},
        {
            "type": "section",
            "block_id": "why",
            "text": {"type": "mrkdwn", "text": "why"},
            "accessory": {
                "type": "button",
                "action_id": "release_approve",
                "value": f"{key[2:]}:abc",
                "text": {"type": "plain_text", "text": "Approve"},
            },
        },
        {"type": "actions", "block_id": "card", "elements": [reject]},
    ]
    return Message(CHANNEL, f"1.{key[2:]}", "U0RELEASEBOT", f"{key} tax-api", blocks)


@pytest.fixture
def sent() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def console(sent: list[dict[str, Any]]) -> Console:
    def bot(request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        sent.append(json.loads(form["payload"][0]) if "payload" in form else form)
        return httpx.Response(200)

    slack = StandinState()
    slack.seed_example()
    slack.messages += [card("R-1"), card("R-2")]
    transport = httpx.MockTransport(bot)
    return Console("http://bot", slack, "s3cret", CHANNEL, transport=transport, view_wait=0)


def test_card_key_reads_the_header_or_the_text() -> None:
    assert card_key(card("R-12")) == "R-12"
    assert card_key(Message(CHANNEL, "1.1", "U0RELEASEBOT", "no key here")) is None


async def test_click_finds_accessory_buttons_on_the_named_card(
    console: Console, sent: list[dict[str, Any]]
) -> None:
    await console.handle("as alice")
    assert await console.handle("click approve r-1")
    assert [(p["actions"][0]["action_id"], p["container"]["message_ts"]) for p in sent] == [
        ("release_approve", "1.1")
    ]
    assert sent[0]["user"]["id"] == "U0ALICE"


async def test_no_such_button_is_said_not_raised(
    console: Console, sent: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert await console.handle("click Soon R-2")  # "Approve soon" is context, not a button
    assert "no button labelled 'Soon' on R-2's card" in capsys.readouterr().out
    assert sent == []


async def test_a_confirm_is_asked_before_the_click_is_sent(
    console: Console, sent: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    confirm = {
        "title": {"type": "plain_text", "text": "Reject R-3?"},
        "text": {"type": "mrkdwn", "text": "It cannot be approved again."},
        "confirm": {"type": "plain_text", "text": "Reject"},
        "deny": {"type": "plain_text", "text": "Keep it"},
    }
    console.slack.messages.append(card("R-3", confirm))
    await console.handle("click Reject")
    shown = capsys.readouterr().out
    assert "Reject R-3?" in shown and "It cannot be approved again." in shown
    assert console.prompt() == "  Reject? [y/N] " and sent == []
    await console.handle("n")
    assert sent == [] and console.prompt() == "carol> "
    await console.handle("click Reject")
    await console.handle("y")
    assert [p["actions"][0]["action_id"] for p in sent] == ["release_reject"]


async def test_a_failing_command_leaves_the_console_running(
    console: Console, capsys: pytest.CaptureFixture[str]
) -> None:
    console.slack.messages.append(
        Message(CHANNEL, "9.9", "U0RELEASEBOT", "R-9 odd", [{"type": "actions", "elements": 7}])
    )
    assert await console.handle("click Approve R-9") is True
    assert "the console carries on" in capsys.readouterr().out
    assert await console.handle("quit") is False
