"""The slash command: parse and ack at once (errors and help ride on the ack), then do the
work in a background task and answer privately or through the release card."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.engine.model import Strategy
from bot.engine.service import DeployRequest
from bot.engine.states import State
from bot.slack.blocks import answers, views
from bot.slack.blocks.common import section, when
from bot.slack.blocks.views import chunks
from bot.slack.listeners.audit_command import audit
from bot.slack.listeners.context import Listening
from bot.slack.listeners.errors import answering
from bot.slack.render import stats_text
from bot.slack.replies import Caller
from bot.slack.text import channel, code, mention, plain
from bot.slack.throttle import polite_answer
from commands import UsageError, help_text, parse
from commands import model as cmd
from commands.when import parse_when

log = logging.getLogger("releasebot.slack")

Handler = Callable[[Any, Any, Caller], Awaitable[None]]

# Commands that only look: each person may run ``slack.read_limit`` of them at a time.
READS = (
    cmd.Status,
    cmd.History,
    cmd.Versions,
    cmd.Migrations,
    cmd.Health,
    cmd.Stats,
    cmd.Plan,
    cmd.Audit,
)


def register(app: AsyncApp, rt: Listening) -> None:
    """Attach the slash command listener for ``rt.config.slack.command``."""
    name = rt.config.slack.command

    async def on_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        try:
            parsed = parse(command.get("text") or "", command_name=name)
            if isinstance(parsed, cmd.Help):
                await ack(text=plain(help_text(parsed.topic, command_name=name)))
                return
        except UsageError as exc:
            await ack(text=plain(str(exc)))
            return
        if isinstance(parsed, READS):
            wait = rt.read_limit.admit(str(command.get("user_id")))
            if wait is not None:
                log.info(
                    "read command from %s refused by the per-person limit",
                    command.get("user_id"),
                    extra={"subcommand": parsed.subcommand},
                )
                await ack(text=polite_answer(f"{name} {parsed.subcommand}", wait))
                return
        await ack()
        caller = Caller(user_id=command["user_id"], channel_id=command.get("channel_id"))
        rt.tasks.spawn(run(rt, parsed, caller), name=f"{parsed.subcommand}:{caller.user_id}")

    app.command(name)(on_command)


async def run(rt: Listening, parsed: cmd.Command, caller: Caller) -> None:
    """Carry out a parsed command; every failure becomes a private answer."""
    handler = HANDLERS.get(type(parsed))
    if handler is None:
        await rt.replier.ephemeral(
            caller,
            f"{code(f'{rt.config.slack.command} {parsed.subcommand}')} is not available yet.",
        )
        return
    await answering(rt, caller, handler(rt, parsed, caller))


async def deploy(rt: Listening, c: cmd.Deploy, caller: Caller) -> None:
    request = DeployRequest(
        service=c.service,
        version=c.version,
        requested_by=caller.user_id,
        environment=c.env,
        reason=c.reason,
        strategy=Strategy(c.strategy) if c.strategy else None,
        emergency=c.emergency,
    )
    release = await rt.service.request_deploy(request)
    if caller.channel_id != rt.config.slack.release_channel:
        await rt.replier.ephemeral(
            caller,
            f"{release.key} is posted in {channel(rt.config.slack.release_channel)}; "
            "its card there shows every step.",
        )
    assert release.id is not None
    if release.state is State.APPROVED:
        await _start_or_explain(rt, release.id, caller)


async def _start_or_explain(
    rt: Listening, release_id: int, caller: Caller, approved_by_caller: bool = False
) -> None:
    """Start an approved release; when it has to wait, tell the person why and their place."""
    started = await rt.service.start(release_id)
    release = started.release
    if not started.waiting:
        if approved_by_caller:
            await rt.replier.ephemeral(caller, f"You approved {release.key}; it starts now.")
        return
    lead = f"You approved {release.key}; it " if approved_by_caller else f"{release.key} "
    lock, place, holder = started.lock, started.place, started.holder
    if lock is not None:
        why = f" ({plain(lock.reason)})" if lock.reason else ""
        text = (
            f"{lead}is approved and waits: {plain(release.target)} is locked by "
            f"{mention(lock.locked_by)}{why}. "
            f"It starts when the lock is released; it is number {place} in line."
        )
    else:
        busy = f" with {holder.key}" if holder else ""
        text = (
            f"{lead}is approved and waits: {plain(release.target)} is busy{busy}. It is "
            f"number {place} in line and starts by itself when the environment frees."
        )
    await rt.replier.ephemeral(caller, text)


async def approve(rt: Listening, c: cmd.Approve, caller: Caller) -> None:
    release = await rt.service.decide(c.release_number, caller.user_id, True)
    if release.state is State.APPROVED and release.id is not None:
        await _start_or_explain(rt, release.id, caller, approved_by_caller=True)
    else:
        await rt.replier.ephemeral(caller, f"You approved {release.key}.")


async def reject(rt: Listening, c: cmd.Reject, caller: Caller) -> None:
    if not c.reason:
        await rt.replier.ephemeral(
            caller,
            f"Say why: {code(f'{rt.config.slack.command} reject {c.release_id}')} "
            '`--reason "..."`.',
        )
        return
    release = await rt.service.decide(c.release_number, caller.user_id, False, reason=c.reason)
    await rt.replier.ephemeral(caller, f"You rejected {release.key}.")


async def cancel(rt: Listening, c: cmd.Cancel, caller: Caller) -> None:
    release = await rt.service.cancel(c.release_number, caller.user_id)
    await rt.replier.ephemeral(caller, f"{release.key} is cancelled.")


async def plan(rt: Listening, c: cmd.Plan, caller: Caller) -> None:
    report = await rt.service.plan(
        DeployRequest(
            service=c.service, version=c.version, requested_by=caller.user_id, environment=c.env
        )
    )
    text, blocks = answers.plan(report, rt.config.slack.command)
    await rt.replier.ephemeral(caller, text, blocks)


async def lock(rt: Listening, c: cmd.Lock, caller: Caller) -> None:
    created = await rt.service.lock(c.service, c.env, caller.user_id, c.reason)
    verb = "locked" if created else "still locked; reason updated"
    await rt.replier.ephemeral(caller, f"{plain(c.service)}/{plain(c.env)} is {verb}.")


async def unlock(rt: Listening, c: cmd.Unlock, caller: Caller) -> None:
    await rt.service.unlock(c.service, c.env, caller.user_id)
    await rt.replier.ephemeral(caller, f"{plain(c.service)}/{plain(c.env)} is unlocked.")


async def freeze(rt: Listening, c: cmd.Freeze, caller: Caller) -> None:
    until = parse_when(c.until, rt.clock.now(), await rt.replier.timezone(caller.user_id))
    await rt.service.freeze(c.env, until, caller.user_id, c.reason)
    await rt.replier.ephemeral(caller, f"{plain(c.env)} is frozen until {when(until)}.")


async def unfreeze(rt: Listening, c: cmd.Unfreeze, caller: Caller) -> None:
    await rt.service.unfreeze(c.env, caller.user_id)
    await rt.replier.ephemeral(caller, f"{plain(c.env)} is no longer frozen.")


async def status(rt: Listening, c: cmd.Status, caller: Caller) -> None:
    if c.service is None:
        if c.env is not None:
            await rt.replier.ephemeral(caller, "Name a service before the environment.")
            return
        text, blocks = views.status_overview(await rt.service.overview())
    else:
        text, blocks = views.status_detail(await rt.service.target_status(c.service, c.env))
    await rt.replier.ephemeral(caller, text, blocks)


async def history(rt: Listening, c: cmd.History, caller: Caller) -> None:
    limit = c.limit or 10
    rows, more = await rt.service.release_history(c.service, c.env, limit)
    text, blocks = views.history_view(c.service, c.env, rows, more, rt.config.slack.command, limit)
    await rt.replier.ephemeral(caller, text, blocks)


async def versions(rt: Listening, c: cmd.Versions, caller: Caller) -> None:
    env, listed, active = await rt.service.versions_of(c.service, c.env)
    sources = await rt.service.version_sources(listed[: views.VERSIONS_SHOWN])
    text, blocks = views.versions_view(
        c.service, env, listed, active, rt.clock.now(), sources=sources
    )
    await rt.replier.ephemeral(caller, text, blocks)


async def migrations(rt: Listening, c: cmd.Migrations, caller: Caller) -> None:
    listing = await rt.service.migrations_of(c.service, c.env)
    text, blocks = views.migrations_view(listing)
    await rt.replier.ephemeral(caller, text, blocks)


async def health(rt: Listening, c: cmd.Health, caller: Caller) -> None:
    text, blocks = views.health_view(await rt.service.health(c.service, c.env))
    await rt.replier.ephemeral(caller, text, blocks)


async def stats(rt: Listening, c: cmd.Stats, caller: Caller) -> None:
    text = stats_text(await rt.service.stats(c.service, c.days or 30))
    await rt.replier.ephemeral(caller, text, [section(chunk) for chunk in chunks([text], 2900)])


async def _control(rt: Listening, release_id: int, caller: Caller, verb: str) -> None:
    release = await rt.service.control(release_id, caller.user_id, verb)
    if release is not None:
        await rt.replier.ephemeral(
            caller, f"{release.key}: {verb} done; it is {release.state.value.replace('_', ' ')}."
        )


async def promote(rt: Listening, c: cmd.Promote, caller: Caller) -> None:
    await _control(rt, c.release_number, caller, "promote")


async def pause(rt: Listening, c: cmd.Pause, caller: Caller) -> None:
    await _control(rt, c.release_number, caller, "pause")


async def resume(rt: Listening, c: cmd.Resume, caller: Caller) -> None:
    await _control(rt, c.release_number, caller, "resume")


async def rollback(rt: Listening, c: cmd.Rollback, caller: Caller) -> None:
    release = await rt.service.request_rollback(
        c.service, c.env, caller.user_id, c.to_version, c.reason
    )
    if release is None:
        await rt.replier.ephemeral(caller, "The rollback could not be completed; see the channel.")
        return
    state = release.state.value.replace("_", " ")
    await rt.replier.ephemeral(caller, f"{release.key} ({release.kind.value}): {state}.")


async def restore_db(rt: Listening, c: cmd.RestoreDb, caller: Caller) -> None:
    release = await rt.service.request_restore(c.release_number, caller.user_id)
    if release.state is State.APPROVED and release.id is not None:
        await _start_or_explain(rt, release.id, caller)
    await rt.replier.ephemeral(
        caller,
        f"{release.key} restores D1 to the bookmark before {plain(c.release_id)}; "
        + (
            "it needs approval on its card."
            if release.state is State.AWAITING_APPROVAL
            else "it runs now."
        ),
    )


HANDLERS: dict[type, Handler] = {
    cmd.Audit: audit,
    cmd.Stats: stats,
    cmd.History: history,
    cmd.Versions: versions,
    cmd.Migrations: migrations,
    cmd.Health: health,
    cmd.Promote: promote,
    cmd.Pause: pause,
    cmd.Resume: resume,
    cmd.Rollback: rollback,
    cmd.RestoreDb: restore_db,
    cmd.Deploy: deploy,
    cmd.Status: status,
    cmd.Approve: approve,
    cmd.Reject: reject,
    cmd.Cancel: cancel,
    cmd.Plan: plan,
    cmd.Lock: lock,
    cmd.Unlock: unlock,
    cmd.Freeze: freeze,
    cmd.Unfreeze: unfreeze,
}
