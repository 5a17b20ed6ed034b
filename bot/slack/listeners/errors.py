"""The one place Slack-side work turns errors into private answers."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable
from typing import Any

from bot.engine.errors import Refused, ReleaseError
from bot.slack.blocks import answers
from bot.slack.listeners.context import Listening
from bot.slack.render import words
from bot.slack.replies import Caller
from bot.slack.text import code, plain

log = logging.getLogger("releasebot.slack")


async def answering(rt: Listening, caller: Caller, work: Awaitable[Any]) -> None:
    """Run ``work``; a refusal or any engine error becomes an ephemeral answer saying why, and
    an unexpected error a short reference the operators can find in the logs."""
    try:
        await work
    except Refused as exc:  # its words name people and moments: shown as Slack shows them
        text, blocks = answers.error(words(exc.words))
        await rt.replier.ephemeral(caller, text, blocks)
    except ReleaseError as exc:
        text, blocks = answers.error(plain(str(exc)))
        await rt.replier.ephemeral(caller, text, blocks)
    except ValueError as exc:  # a button value or payload that is not ours
        log.info("unusable payload from %s: %s", caller.user_id, exc)
        await rt.replier.ephemeral(caller, ":warning: That button is not valid any more.")
    except Exception:
        ref = secrets.token_hex(4)
        log.exception("request from %s failed (ref %s)", caller.user_id, ref)
        text, blocks = answers.error(
            f"Something went wrong on our side (ref {code(ref)}). What was done before the error "
            "is kept; tell the bot's operators the ref if it happens again."
        )
        await rt.replier.ephemeral(caller, text, blocks)
