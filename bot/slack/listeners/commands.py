"""The slash command: parse and ack at once (errors and help ride on the ack), then do the
work in a background task and answer privately or through the release card."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from bot.engine.errors import ReleaseError
from bot.engine.model import Strategy
from bot.engine.service import DeployRequest, LiveSplit
from bot.slack.blocks import answers
from bot.slack.blocks.common import escape
from bot.slack.replies import Caller
from commands import UsageError, help_text, parse
from commands import model as cmd

log = logging.getLogger("releasebot.slack")

Handler = Callable[[Any, Any, Caller], Awaitable[None]]


def register(app: Any, rt: Any) -> None:
    """Attach the slash command listener for ``rt.config.slack.command``."""
    name = rt.config.slack.command

    async def on_command(ack: Any, command: dict[str, Any]) -> None:
        try:
            parsed = parse(command.get("text") or "", command_name=name)
            if isinstance(parsed, cmd.Help):
                await ack(text=escape(help_text(parsed.topic, command_name=name)))
                return
        except UsageError as exc:
            await ack(text=escape(str(exc)))
            return
        await ack()
        caller = Caller(user_id=command["user_id"], channel_id=command.get("channel_id"))
        rt.tasks.spawn(run(rt, parsed, caller), name=f"{parsed.subcommand}:{caller.user_id}")

    app.command(name)(on_command)


async def run(rt: Any, parsed: Any, caller: Caller) -> None:
    """Carry out a parsed command; every failure becomes a private answer."""
    handler = HANDLERS.get(type(parsed))
    try:
        if handler is None:
            await rt.replier.ephemeral(
                caller, f"`{rt.config.slack.command} {parsed.subcommand}` is not available yet."
            )
            return
        await handler(rt, parsed, caller)
    except ReleaseError as exc:
        text, blocks = answers.error(str(exc))
        await rt.replier.ephemeral(caller, text, blocks)
    except Exception:
        ref = secrets.token_hex(4)
        log.exception("command %s failed (ref %s)", parsed.subcommand, ref)
        text, blocks = answers.error(
            f"Something went wrong on our side (ref `{ref}`). Nothing was changed by the "
            "failed part; tell the bot's operators the ref if it happens again."
        )
        await rt.replier.ephemeral(caller, text, blocks)


async def deploy(rt: Any, c: cmd.Deploy, caller: Caller) -> None:
    request = DeployRequest(
        service=c.service,
        version=c.version,
        requested_by=caller.user_id,
        environment=c.env,
        reason=c.reason,
        strategy=Strategy(c.strategy) if c.strategy else None,
    )
    release = await rt.service.request_deploy(request)
    if caller.channel_id != rt.config.slack.release_channel:
        await rt.replier.ephemeral(
            caller,
            f"{release.key} is posted in <#{rt.config.slack.release_channel}>; "
            "its card there shows every step.",
        )
    assert release.id is not None
    await rt.service.drive(release.id)


async def status(rt: Any, c: cmd.Status, caller: Caller) -> None:
    service = rt.service
    if c.service is not None:
        live = await service.live(c.service, c.env)
        inflight = await service.repo.active_for(live.service, live.environment)
        text, blocks = answers.status_detail(live, inflight)
        await rt.replier.ephemeral(caller, text, blocks)
        return
    targets = [(svc, env) for svc, spec in rt.config.services.items() for env in spec.environments]

    async def one(svc: str, env: str) -> tuple[LiveSplit | str, Any]:
        try:
            live: LiveSplit | str = await service.live(svc, env)
        except ReleaseError as exc:
            live = str(exc)
        return live, await service.repo.active_for(svc, env)

    rows = await asyncio.gather(*(one(s, e) for s, e in targets))
    text, blocks = answers.status_overview(list(rows), targets)
    await rt.replier.ephemeral(caller, text, blocks)


HANDLERS: dict[type, Handler] = {
    cmd.Deploy: deploy,
    cmd.Status: status,
}
