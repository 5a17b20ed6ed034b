"""``create_app``: the Bolt AsyncApp with every listener attached. Nothing global."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.slack.listeners import actions, commands, home

log = logging.getLogger("releasebot.slack")


def create_app(rt: Any) -> AsyncApp:
    """``process_before_response=True``: listeners only parse, ack and hand work to background
    tasks, so the HTTP answer leaves as soon as the listener returns — without Bolt's
    default ack polling."""
    settings = rt.settings
    signing = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    )
    app = AsyncApp(
        client=rt.slack_client,
        signing_secret=signing,
        process_before_response=True,
        request_verification_enabled=not settings.socket_mode,
        raise_error_for_unhandled_request=False,
        logger=logging.getLogger("releasebot.bolt"),
    )
    commands.register(app, rt)
    actions.register(app, rt)
    home.register(app, rt)
    return app
