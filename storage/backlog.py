"""What the outboxes still owe, for the metrics: rows not yet taken and the oldest one's age."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import reading
from storage.tables import slack_outbox, webhook_outbox


async def outbox_backlog(engine: AsyncEngine, now: datetime) -> dict[str, tuple[int, float]]:
    """``{"slack": (rows owed, age of the oldest in seconds), "webhook": (...)}``.

    A row is owed while ``next_attempt_at`` is set (both tables clear it once the row is done:
    sent, delivered or given up), which the tables' indexes on that column make cheap.
    """
    found: dict[str, tuple[int, float]] = {}
    async with reading(engine) as conn:
        for name, table in (("slack", slack_outbox), ("webhook", webhook_outbox)):
            row = (
                await conn.execute(
                    sa.select(sa.func.count(), sa.func.min(table.c.created_at)).where(
                        table.c.next_attempt_at.is_not(None)
                    )
                )
            ).one()
            count, oldest = int(row[0] or 0), row[1]
            age = 0.0
            if oldest is not None:
                if oldest.tzinfo is None and now.tzinfo is not None:
                    oldest = oldest.replace(tzinfo=now.tzinfo)
                age = max(0.0, (now - oldest).total_seconds())
            found[name] = (count, age)
    return found
