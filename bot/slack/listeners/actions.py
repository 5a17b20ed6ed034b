"""Buttons on the release card and the reject modal: ack at once, decide in the background."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.engine.states import State
from bot.slack import ids
from bot.slack.blocks.modals import reject_modal
from bot.slack.listeners.context import Listening
from bot.slack.listeners.errors import answering
from bot.slack.replies import Caller
from bot.slack.text import code

CONTROLS = {
    ids.PROMOTE: "promote",
    ids.PAUSE: "pause",
    ids.RESUME: "resume",
    ids.ROLL_BACK: "roll back",
}


def _caller(body: dict[str, Any]) -> Caller:
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id"
    )
    return Caller(user_id=body["user"]["id"], channel_id=channel)


def _release_and_version(action: dict[str, Any]) -> tuple[int, str]:
    return ids.parse_action_value(str(action.get("value", "")))


def register(app: AsyncApp, rt: Listening) -> None:
    async def on_approve(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        caller = _caller(body)

        async def work() -> None:
            release_id, version = _release_and_version(action)
            release = await rt.service.decide(release_id, caller.user_id, True, version)
            if release.state is State.APPROVED and release.id is not None:
                await rt.service.start(release.id)  # a wait is said in the thread and on the card
            elif release.state.is_active and release.id is not None:
                await rt.service.kick(release.id)

        rt.tasks.spawn(answering(rt, caller, work()), name=f"approve:{caller.user_id}")

    async def on_reject(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        caller = _caller(body)

        async def work() -> None:
            release_id, version = _release_and_version(action)
            release = await rt.service.get(release_id)
            # Refuse before asking for a reason when the person may not decide anyway.
            await rt.service.check_vote(release, caller.user_id, version, "reject")
            await rt.slack_client.views_open(
                trigger_id=body["trigger_id"],
                view=reject_modal(release.key, action["value"]),
            )

        rt.tasks.spawn(answering(rt, caller, work()), name=f"reject:{caller.user_id}")

    async def on_reject_submitted(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]
    ) -> None:
        values = view.get("state", {}).get("values", {})
        reason = (
            values.get(ids.REJECT_REASON_BLOCK, {}).get(ids.REJECT_REASON_INPUT, {}).get("value")
            or ""
        ).strip()
        if not reason:
            await ack(response_action="errors", errors={ids.REJECT_REASON_BLOCK: "Say why."})
            return
        await ack()
        caller = Caller(user_id=body["user"]["id"], channel_id=rt.config.slack.release_channel)

        async def work() -> None:
            release_id, version = ids.parse_action_value(view.get("private_metadata", ""))
            await rt.service.decide(release_id, caller.user_id, False, version, reason)

        rt.tasks.spawn(answering(rt, caller, work()), name=f"rejected:{caller.user_id}")

    async def on_control(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        caller = _caller(body)

        async def work() -> None:
            release_id, _ = _release_and_version(action)
            await rt.service.control(release_id, caller.user_id, CONTROLS[action["action_id"]])

        rt.tasks.spawn(answering(rt, caller, work()), name=f"control:{caller.user_id}")

    async def on_unknown(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        caller = _caller(body)
        rt.tasks.spawn(
            rt.replier.ephemeral(
                caller,
                ":warning: That button is not one this bot knows any more; "
                f"use {code(f'{rt.config.slack.command} status')} to see where things stand.",
            ),
            name="unknown-action",
        )

    app.action(ids.APPROVE)(on_approve)
    app.action(ids.REJECT)(on_reject)
    app.view(ids.REJECT_MODAL)(on_reject_submitted)
    for control in CONTROLS:
        app.action(control)(on_control)
    # Registered last: Bolt runs the first listener that matches.
    app.action(re.compile(".*"))(on_unknown)
