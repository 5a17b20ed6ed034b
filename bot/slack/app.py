"""``create_app``: the Bolt AsyncApp with every listener attached. Nothing global."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.slack.listeners import actions, commands, home
from bot.slack.replays import ReplayGuard

log = logging.getLogger("releasebot.slack")

# Bolt's lines that quote a whole request body, by how they begin: a refused signature
# (INFO), a listener's error (INFO, after the error itself), an unhandled request (WARNING).
_BODY_QUOTING = (
    "Invalid request signature detected",
    "Request body:",
    "Unhandled request",
    "A global middleware",
)


class WithoutBodies(logging.Filter):
    """Keeps request bodies out of Bolt's log lines: a body is what a stranger sent (up to
    ``bot.web.MAX_BODY`` of it, written whole at every refusal) or what a person typed.
    The line stays, saying what happened; the body is left out."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for start in _BODY_QUOTING:
            if message.startswith(start):
                record.msg, record.args = f"{start.rstrip(':')} (request body not logged)", None
                break
        return True


def bolt_logger() -> logging.Logger:
    logger = logging.getLogger("releasebot.bolt")
    if not any(isinstance(f, WithoutBodies) for f in logger.filters):
        logger.addFilter(WithoutBodies())
    return logger


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
        logger=bolt_logger(),
    )
    app.use(ReplayGuard(rt.triggers, rt.clock, rt.tasks, rt.replier))
    commands.register(app, rt)
    actions.register(app, rt)
    home.register(app, rt)
    return app
