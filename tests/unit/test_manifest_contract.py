"""What app_manifest.yml declares is what the app registers: the slash command, every
interactive action and modal the bot sends, and every event it subscribes to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import yaml
from pydantic import SecretStr
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.config import load_config
from bot.runtime import Runtime
from bot.settings import Settings
from bot.slack import ids

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def app(tmp_path: Path) -> Any:
    settings = Settings(
        slack_bot_token=SecretStr("xoxb-contract"),
        slack_signing_secret=SecretStr("contract-secret"),
        slack_api_url="http://127.0.0.1:9/api/",
        cloudflare_api_token=SecretStr("contract-cf"),
        cloudflare_api_base_url="http://127.0.0.1:9/client/v4",
        database_url=f"sqlite:///{tmp_path / 'c.db'}",
    )
    rt = Runtime(settings, load_config(REPO / "releasebot.example.yml"))
    yield rt.bolt
    await rt.close()


async def _handler(app: AsyncApp, body: str) -> str:
    """The name of the listener function Bolt would run for ``body``."""
    request = AsyncBoltRequest(
        body=body, headers={"content-type": ["application/x-www-form-urlencoded"]}
    )
    for listener in app._async_listeners:
        if await listener.async_matches(req=request, resp=BoltResponse(status=200)):
            return listener.ack_function.__name__
    return "(none)"


def _manifest() -> dict[str, Any]:
    return yaml.safe_load((REPO / "app_manifest.yml").read_text())


async def test_the_slash_command_is_registered(app: AsyncApp) -> None:
    commands = [c["command"] for c in _manifest()["features"]["slash_commands"]]
    assert commands == [load_config(REPO / "releasebot.example.yml").slack.command]
    for command in commands:
        body = urlencode({"command": command, "text": "help", "user_id": "U1", "channel_id": "C1"})
        assert await _handler(app, body) == "on_command"
    assert await _handler(app, urlencode({"command": "/other", "text": ""})) == "(none)"


async def test_interactivity_covers_every_button_and_modal_the_bot_sends(app: AsyncApp) -> None:
    assert _manifest()["settings"]["interactivity"]["is_enabled"] is True
    for action in ids.CARD_ACTIONS:
        payload = {
            "type": "block_actions",
            "user": {"id": "U1"},
            "actions": [{"action_id": action, "block_id": "b", "value": "1:v"}],
        }
        name = await _handler(app, "payload=" + quote(json.dumps(payload)))
        assert name not in ("(none)", "on_unknown"), action
    view = {
        "type": "view_submission",
        "user": {"id": "U1"},
        "view": {"type": "modal", "callback_id": ids.REJECT_MODAL, "private_metadata": "1:v"},
    }
    assert await _handler(app, "payload=" + quote(json.dumps(view))) == "on_reject_submitted"


async def test_every_subscribed_event_has_a_listener(app: AsyncApp) -> None:
    events = _manifest()["settings"]["event_subscriptions"]["bot_events"]
    assert events
    for event in events:
        body = json.dumps({"type": "event_callback", "event": {"type": event, "user": "U1"}})
        request = AsyncBoltRequest(body=body, headers={"content-type": ["application/json"]})
        matched = [
            listener
            for listener in app._async_listeners
            if await listener.async_matches(req=request, resp=BoltResponse(status=200))
        ]
        assert matched, f"no listener for the {event} event the manifest subscribes to"
