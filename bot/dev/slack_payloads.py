"""Requests as Slack sends them: signed slash commands and ``block_actions``.

Used by the offline console and the tests to talk to the bot exactly like Slack does.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from typing import Any
from urllib.parse import quote, urlencode

from slack_sdk.signature import SignatureVerifier

from bot.dev.slack_standin import TEAM_ID

_invocations = itertools.count(1)


def trigger_id() -> str:
    """A new trigger_id, shaped like Slack's (``<seconds>.<number>.<hex>``): one for each
    command typed, button pressed or modal submitted."""
    return f"{int(time.time())}.{next(_invocations)}.{secrets.token_hex(10)}"


def signed_headers(secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    assert signature is not None  # only None without a signing secret
    return {
        "x-slack-request-timestamp": ts,
        "x-slack-signature": signature,
        "content-type": "application/x-www-form-urlencoded",
    }


def slash_command(
    text: str, user_id: str, channel_id: str, command: str = "/release", user_name: str = ""
) -> str:
    return urlencode(
        {
            "token": "deprecated-verification-token",
            "team_id": TEAM_ID,
            "team_domain": "battleborn",
            "channel_id": channel_id,
            "channel_name": channel_id.lower(),
            "user_id": user_id,
            "user_name": user_name or user_id.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A0RELEASEBOT",
            "is_enterprise_install": "false",
            "response_url": "https://hooks.slack.com/commands/T0BATTLEBORN/1/standin",
            "trigger_id": trigger_id(),
        }
    )


def block_action(
    action_id: str,
    value: str,
    user_id: str,
    channel_id: str,
    message_ts: str,
    block_id: str = "card",
    label: str = "",
    trigger: str | None = None,
) -> str:
    """A button press on a message; ``trigger`` is the ``trigger_id`` (a new one by default)."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {
            "id": user_id,
            "username": user_id.lower(),
            "name": user_id.lower(),
            "team_id": TEAM_ID,
        },
        "api_app_id": "A0RELEASEBOT",
        "token": "deprecated-verification-token",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "trigger_id": trigger or trigger_id(),
        "team": {"id": TEAM_ID, "domain": "battleborn"},
        "channel": {"id": channel_id, "name": channel_id.lower()},
        "message": {"type": "message", "ts": message_ts, "user": "U0RELEASEBOT"},
        "response_url": "https://hooks.slack.com/actions/T0BATTLEBORN/1/standin",
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "value": value,
                "type": "button",
                "text": {"type": "plain_text", "text": label or action_id},
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return "payload=" + quote(json.dumps(payload))


def view_submission(
    callback_id: str, private_metadata: str, values: dict[str, Any], user_id: str
) -> str:
    payload = {
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": "battleborn"},
        "user": {
            "id": user_id,
            "username": user_id.lower(),
            "name": user_id.lower(),
            "team_id": TEAM_ID,
        },
        "api_app_id": "A0RELEASEBOT",
        "trigger_id": trigger_id(),
        "view": {
            "id": "V0001",
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "state": {"values": values},
        },
    }
    return "payload=" + quote(json.dumps(payload))


def event_callback(event: dict[str, Any]) -> str:
    """An Events API delivery (JSON) of ``event``, with a new ``event_id``."""
    return json.dumps(
        {
            "token": "deprecated-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": "A0RELEASEBOT",
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{secrets.token_hex(8).upper()}",
            "event_time": int(time.time()),
        }
    )
