"""The largest requests Slack sends the bot are the bot's own surfaces coming back: a button
on the App Home carries the whole Home view, a button on a card the whole card, a modal
submission the whole modal. Each is built here at its largest (the data of
``test_block_limits``, with text of the characters that grow most on the way: escaped by
the bot, ``\\u``-escaped in Slack's JSON, percent-encoded in the form body) and measured
against ``bot.web.MAX_BODY``."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import pytest

from bot.dev.slack_standin import TEAM_ID
from bot.engine.model import Release, Vote
from bot.engine.reading import TargetStatus
from bot.engine.states import State
from bot.slack import ids
from bot.slack.blocks.card import release_card
from bot.slack.blocks.home import home_view
from bot.slack.blocks.modals import reject_modal
from bot.web import MAX_BODY
from tests.unit import test_block_limits as large

# Characters that grow the most: escaped by the bot (& < >), JSON-escaped (" \), outside
# ASCII (\\uXXXX, and a surrogate pair for an emoji), or plain ASCII as most text is.
GROWING = ["x", "&", "<", '"', "\\", "é", "😀"]

USER = {"id": "U0ALICE", "username": "alice", "name": "alice", "team_id": TEAM_ID}


def _form(payload: dict[str, Any]) -> int:
    """The size of the form body Slack posts: ``payload=`` and the percent-encoded JSON."""
    return len("payload=" + quote(json.dumps(payload), safe=""))


def _click(action_id: str, value: str) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": USER,
        "api_app_id": "A0RELEASEBOT",
        "token": "x" * 24,
        "trigger_id": "13345224609.738474920.8088930838d88f008e0a1b2c3d4e5f6a",
        "team": {"id": TEAM_ID, "domain": "battleborn"},
        "enterprise": None,
        "is_enterprise_install": False,
        "response_url": "https://hooks.slack.com/actions/T0BATTLEBORN/1234567890123/" + "x" * 24,
        "state": {"values": {}},
        "actions": [
            {
                "action_id": action_id,
                "block_id": "b" * 255,
                "value": value,
                "type": "button",
                "text": {"type": "plain_text", "text": "Approve", "emoji": True},
                "action_ts": "1764158400.123456",
            }
        ],
    }


def _release(i: int, state: State, char: str) -> Release:
    """``test_block_limits``' release, its tag (from Cloudflare) made of ``char`` too."""
    return large.release(i, state).copy(version_tag=char * 200)


def _status(i: int, char: str) -> TargetStatus:
    """``test_block_limits``' target status, the live version's tag made of ``char``."""
    found = large.status(i)
    assert found.live is not None
    versions = {vid: replace(v, tag=char * 200) for vid, v in found.live.versions.items()}
    return replace(found, live=replace(found.live, versions=versions))


def home_click(char: str) -> dict[str, Any]:
    view = home_view(
        [_status(i, char) for i in range(100)],
        [_release(i, State.VERIFYING, char) for i in range(50)],
        [_release(i, State.AWAITING_APPROVAL, char) for i in range(50)],
    )
    view |= {"id": "V0HOME", "team_id": TEAM_ID, "hash": "1764158400.abcdef12"}
    value = ids.action_value(1, "a" * 36)
    return _click(ids.APPROVE, value) | {"container": {"type": "view"}, "view": view}


def card_click(char: str) -> dict[str, Any]:
    votes = [Vote(1, "v", f"U{n:08d}", True, large.NOW) for n in range(40)]
    biggest: dict[str, Any] = {}
    for state in State:
        text, blocks = release_card(_release(1, state, char).copy(emergency=True), votes)
        message = {"type": "message", "ts": "1764158400.123456", "text": text, "blocks": blocks}
        if _form(message) > _form(biggest):
            biggest = message
    value = ids.action_value(1, "a" * 36)
    return _click(ids.APPROVE, value) | {
        "container": {"type": "message", "channel_id": "C0RELEASES", "is_ephemeral": False},
        "channel": {"id": "C0RELEASES", "name": "releases"},
        "message": biggest,
    }


def modal_submission(char: str) -> dict[str, Any]:
    view = reject_modal("R-123456789", ids.action_value(123456789, "a" * 36))
    reason = {ids.REJECT_REASON_INPUT: {"type": "plain_text_input", "value": char * 500}}
    view |= {"id": "V0MODAL", "state": {"values": {ids.REJECT_REASON_BLOCK: reason}}}
    return {
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": "battleborn"},
        "user": USER,
        "api_app_id": "A0RELEASEBOT",
        "trigger_id": "13345224609.738474920.8088930838d88f008e0a1b2c3d4e5f6a",
        "view": view,
    }


def largest(monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """The largest form body over every surface and growing character: (bytes, what)."""
    sizes: list[tuple[int, str]] = []
    for char in GROWING:
        monkeypatch.setattr(large, "LONG", char * 5000)
        sizes.append((_form(home_click(char)), f"App Home click, text of {char!r}"))
        sizes.append((_form(card_click(char)), f"card click, text of {char!r}"))
        sizes.append((_form(modal_submission(char)), f"reject modal, reason of {char!r}"))
    return max(sizes)


def test_the_largest_payload_the_bot_causes_fits_the_body_limit_with_a_quarter_to_spare(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    size, what = largest(monkeypatch)
    print(f"largest request: {size:,} bytes ({what}); MAX_BODY {MAX_BODY:,}")
    assert size * 5 // 4 <= MAX_BODY, (size, what)
    # ... and the limit is not far beyond it either: refusing a stranger's megabytes unread
    # is the point of having one.
    assert size * 3 // 2 >= MAX_BODY, (size, what)
