"""``/release audit [<service>] [--since <when>]``: the audit trail, privately, a page at a time.

Without ``--since``: the most recent records. With it: the records from that time on, the
first page of them. Either way the newest of the page is on top, and the footer gives the
``--since`` of the page before (and after) it, so paging is typing (or pasting) one command.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.engine.errors import NotFound
from bot.engine.names import unknown_service
from bot.slack.blocks.audit_view import PAGE_SIZE, audit_page
from bot.slack.listeners.context import Listening
from bot.slack.replies import Caller
from bot.slack.text import plain
from commands import UsageError
from commands import model as cmd
from commands.when import parse_since
from storage.audit_queries import audit_from, recent_audit


async def audit(rt: Listening, c: cmd.Audit, caller: Caller) -> None:
    service = c.service
    if service is not None and service not in rt.config.services:
        raise NotFound(unknown_service(service, rt.config.services))
    since = None
    if c.since:
        try:
            since = parse_since(c.since, rt.clock.now(), await _timezone(rt, caller))
        except UsageError as exc:
            await rt.replier.ephemeral(caller, f":warning: --since: {plain(exc.message)}")
            return
    if since is None:
        page = await recent_audit(rt.db, service, None, PAGE_SIZE)
        newer = None
    else:
        page = await audit_from(rt.db, service, since, PAGE_SIZE)
        newer = await _newer_since(rt.db, service, page)
    older = await _older_since(rt.db, service, page)
    text, blocks = audit_page(page, rt.config.slack.command, service, since, older, newer)
    await rt.replier.ephemeral(caller, text, blocks)


async def _timezone(rt: Listening, caller: Caller) -> tzinfo:
    lookup = getattr(rt.replier, "timezone", None)
    return await lookup(caller.user_id) if lookup is not None else UTC


async def _older_since(
    engine: AsyncEngine, service: str | None, page: list[dict[str, Any]]
) -> datetime | None:
    """The ``--since`` whose page ends right before this page's oldest record."""
    if not page:
        return None
    before = await recent_audit(engine, service, None, PAGE_SIZE, before_seq=page[-1]["seq"])
    if not before:
        return None
    wanted = before[0]["seq"]  # the record just before this page
    # Usually the oldest time of the previous PAGE_SIZE records; when times and chain order
    # disagree (two writers, a clock step), a later start that still reaches `wanted`.
    for start in sorted({r["at"] for r in before}):
        shown = await audit_from(engine, service, start, PAGE_SIZE)
        if shown and shown[0]["seq"] >= wanted:
            return start
    return before[0]["at"]


async def _newer_since(
    engine: AsyncEngine, service: str | None, page: list[dict[str, Any]]
) -> datetime | None:
    """The ``--since`` of the page after this one, if there are newer records."""
    if not page:
        return None
    after = await audit_from(engine, service, None, 1, after_seq=page[0]["seq"])
    return after[0]["at"] if after else None
