"""Replays: a slash command or interaction whose ``trigger_id`` was already taken on in the
last five minutes is answered as a duplicate and not run again.

Slack mints a ``trigger_id`` for each invocation (each command typed, each button pressed,
each modal submitted); a second request carrying one already seen is the same request again:
sent twice by a proxy, or replayed by someone who captured it while its signature is still
fresh (Slack's signatures are good for five minutes, which is why the window is five minutes
too). The ledger is in the database, so every replica recognises what any other took on.

Slack's own redeliveries (``X-Slack-Retry-Num``) of a request already taken on are acked
quietly: the first delivery is being handled, and nobody asked twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.engine.ports import Clock
from bot.slack.replies import Caller, Replier
from bot.tasks import BackgroundTasks

log = logging.getLogger("releasebot.slack")

WINDOW = timedelta(minutes=5)
# The ledger is asked before the ack; if the database does not answer in this time, the
# request is run as if new (its own work needs the database and reports its trouble).
LOOKUP_TIMEOUT = 1.5

# What carries a trigger_id: slash commands (which have no "type") and interactions.
KINDS = ("command", "block_actions", "view_submission", "shortcut", "message_action")

COMMAND_DUPLICATE = (
    ":repeat: This command was already received a moment ago and is being handled; "
    "it is not run again."
)
ACTION_DUPLICATE = ":repeat: That was already received and is being handled; it is not done twice."


class TriggerLedger(Protocol):
    async def first_sighting(
        self, trigger_id: str, kind: str, user_id: str | None, now: datetime, window: timedelta
    ) -> bool: ...

    async def note_once(self, trigger_id: str) -> bool: ...


def trigger_of(body: dict[str, Any]) -> tuple[str, str, str | None] | None:
    """(trigger_id, kind, user id) of a command or interaction; None for anything else."""
    trigger = body.get("trigger_id")
    kind = body.get("type") or ("command" if "command" in body else None)
    if not isinstance(trigger, str) or not trigger or kind not in KINDS:
        return None
    user = body.get("user_id") if kind == "command" else (body.get("user") or {}).get("id")
    return trigger, str(kind), user if isinstance(user, str) else None


def _channel(body: dict[str, Any]) -> str | None:
    found = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    return found if isinstance(found, str) else None


class ReplayGuard(AsyncMiddleware):
    """A global Bolt middleware: runs after Bolt has checked the signature, before any
    listener."""

    def __init__(
        self, ledger: TriggerLedger, clock: Clock, tasks: BackgroundTasks, replier: Replier
    ) -> None:
        self.ledger = ledger
        self.clock = clock
        self.tasks = tasks
        self.replier = replier

    async def async_process(
        self,
        *,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],
    ) -> BoltResponse | None:
        found = trigger_of(req.body) if isinstance(req.body, dict) else None
        if found is None:
            return await next()
        trigger, kind, user = found
        try:
            first = await asyncio.wait_for(
                self.ledger.first_sighting(trigger, kind, user, self.clock.now(), WINDOW),
                LOOKUP_TIMEOUT,
            )
        except Exception as exc:  # the database is down or slow: do not hold the ack
            log.warning("could not check trigger %s for a replay (%s)", kind, type(exc).__name__)
            return await next()
        if first:
            return await next()
        retry = req.headers.get("x-slack-retry-num", [None])[0]
        log.info(
            "%s from %s already handled (%s); not run again",
            kind,
            user,
            "retry" if retry else "replay",
        )
        if retry is not None or user is None:
            return BoltResponse(status=200, body="")
        if kind == "command":
            return BoltResponse(status=200, body={"text": COMMAND_DUPLICATE})
        if kind == "block_actions":
            self.tasks.spawn(self._note(trigger, Caller(user, _channel(req.body))), name="replay")
        return BoltResponse(status=200, body="")

    async def _note(self, trigger: str, caller: Caller) -> None:
        """Tell the person once per trigger, however often it is replayed."""
        if await self.ledger.note_once(trigger):
            await self.replier.ephemeral(caller, ACTION_DUPLICATE)
