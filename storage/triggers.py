"""Slack ``trigger_id``s already handled, shared by every replica through the database.

``first_sighting`` records a trigger and says whether it is new: one statement, an
insert that on conflict only takes over a row older than the window, so two replicas given
the same request at the same moment cannot both see it as new (SQLite and PostgreSQL both
have ``INSERT ... ON CONFLICT DO UPDATE ... WHERE ... RETURNING``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import writing
from storage.tables import slack_triggers


class SqlTriggerLedger:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        dialect = engine.dialect.name
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    async def first_sighting(
        self, trigger_id: str, kind: str, user_id: str | None, now: datetime, window: timedelta
    ) -> bool:
        """Record ``trigger_id`` as handled at ``now``; False when it already was, less than
        ``window`` ago."""
        values = {"trigger_id": trigger_id, "kind": kind, "user_id": user_id, "seen_at": now}
        insert = self._insert(slack_triggers).values(**values, noted=False)
        statement = insert.on_conflict_do_update(
            index_elements=[slack_triggers.c.trigger_id],
            set_={**{k: insert.excluded[k] for k in values if k != "trigger_id"}, "noted": False},
            where=slack_triggers.c.seen_at <= now - window,
        ).returning(slack_triggers.c.trigger_id)
        async with writing(self._engine) as conn:
            # A row comes back when it was inserted or taken over, none when it was fresh.
            taken = (await conn.execute(statement)).first()
        return taken is not None

    async def note_once(self, trigger_id: str) -> bool:
        """True the first time it is asked for ``trigger_id``: whether to tell the person."""
        statement = (
            sa.update(slack_triggers)
            .where(slack_triggers.c.trigger_id == trigger_id, slack_triggers.c.noted.is_(False))
            .values(noted=True)
            .returning(slack_triggers.c.trigger_id)
        )
        async with writing(self._engine) as conn:
            return (await conn.execute(statement)).first() is not None

    async def expire(self, before: datetime) -> int:
        """Delete the triggers seen before ``before``; how many went."""
        statement = (
            sa.delete(slack_triggers)
            .where(slack_triggers.c.seen_at < before)
            .returning(slack_triggers.c.trigger_id)
        )
        async with writing(self._engine) as conn:
            return len((await conn.execute(statement)).all())
