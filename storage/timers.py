"""Durable timers: work due at a time (a bake ending, an approval expiring), claimed with a
lease so that exactly one replica runs each, and picked up again if that replica dies::

    timers = SqlTimerRepository(engine)
    await timers.schedule("bake_done", now + timedelta(minutes=5), release_id=7)
    for timer in await timers.claim_due(now, owner="replica-a", lease=timedelta(seconds=60)):
        ...                                  # do the work
        await timers.complete(timer.id)      # or let the lease run out to have it retried
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.engine.model import Timer
from storage.db import claim_rows, reading, writing
from storage.tables import timers

log = logging.getLogger("releasebot.storage")


def _timer_from_row(row: Any) -> Timer:
    return Timer(
        id=row["id"],
        kind=row["kind"],
        due_at=row["due_at"],
        release_id=row["release_id"],
        payload=row["payload"] or {},
        claimed_by=row["claimed_by"],
        claimed_until=row["claimed_until"],
        fired_at=row["fired_at"],
    )


class SqlTimerRepository:
    """Timers in the ``timers`` table. A timer is claimable while it is due, not fired, and
    either unclaimed or its lease has run out."""

    def __init__(
        self,
        engine: AsyncEngine,
        on_claimed: Callable[[Sequence[Timer], datetime], None] | None = None,
    ) -> None:
        """``on_claimed`` hears of the timers each claim returns and when (how late they run:
        ``bot.metrics.Metrics.observe_timers``)."""
        self._engine = engine
        self._on_claimed = on_claimed

    async def schedule(
        self,
        kind: str,
        due_at: datetime,
        release_id: int | None = None,
        payload: dict[str, Any] | None = None,
    ) -> int:
        """Store a timer; returns its id."""
        async with writing(self._engine) as conn:
            result = await conn.execute(
                sa.insert(timers).values(
                    kind=kind, due_at=due_at, release_id=release_id, payload=payload
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    async def claim_due(
        self, now: datetime, owner: str, lease: timedelta, limit: int = 50
    ) -> list[Timer]:
        """Lease up to ``limit`` due timers to ``owner`` until ``now + lease``, earliest first
        (concurrent claimers never get the same timer: :func:`storage.db.claim_rows`)."""
        free = sa.or_(timers.c.claimed_by.is_(None), timers.c.claimed_until < now)
        rows = await claim_rows(
            self._engine,
            timers,
            sa.and_(timers.c.fired_at.is_(None), timers.c.due_at <= now, free),
            (timers.c.due_at, timers.c.id),
            limit,
            {"claimed_by": owner, "claimed_until": now + lease},
        )
        claimed = sorted((_timer_from_row(row) for row in rows), key=lambda t: (t.due_at, t.id))
        if claimed:
            self._observe(claimed, now)
        return claimed

    def _observe(self, claimed: Sequence[Timer], now: datetime) -> None:
        """Tell ``on_claimed`` of timers just claimed, by the poller or by their own driver."""
        if self._on_claimed is None:
            return
        try:
            self._on_claimed(claimed, now)
        except Exception:
            log.exception("observing claimed timers failed")

    async def claim(
        self, timer_id: int, now: datetime, owner: str, lease: timedelta
    ) -> Timer | None:
        """Lease one timer (due or not) to ``owner``, if nobody else holds it; else None."""
        free = sa.or_(
            timers.c.claimed_by.is_(None),
            timers.c.claimed_until < now,
            timers.c.claimed_by == owner,
        )
        async with writing(self._engine) as conn:
            result = await conn.execute(
                sa.update(timers)
                .where(timers.c.id == timer_id, timers.c.fired_at.is_(None), free)
                .values(claimed_by=owner, claimed_until=now + lease)
                .returning(*timers.columns)
            )
            row = result.mappings().first()
        if row is None:
            return None
        timer = _timer_from_row(row)
        self._observe([timer], now)
        return timer

    async def extend(self, timer_id: int, owner: str, until: datetime) -> bool:
        """Renew ``owner``'s lease; False when the timer is no longer theirs."""
        async with writing(self._engine) as conn:
            result = await conn.execute(
                sa.update(timers)
                .where(
                    timers.c.id == timer_id,
                    timers.c.claimed_by == owner,
                    timers.c.fired_at.is_(None),
                )
                .values(claimed_until=until)
            )
            return bool(result.rowcount)

    async def pending(self, release_id: int, kind: str | None = None) -> list[Timer]:
        """A release's timers that have not fired, earliest first."""
        conditions = [timers.c.release_id == release_id, timers.c.fired_at.is_(None)]
        if kind is not None:
            conditions.append(timers.c.kind == kind)
        async with reading(self._engine) as conn:
            rows = await conn.execute(
                sa.select(timers).where(*conditions).order_by(timers.c.due_at, timers.c.id)
            )
            return [_timer_from_row(r) for r in rows.mappings()]

    async def pending_kind(self, kind: str) -> list[Timer]:
        """Timers of ``kind`` that have not fired, earliest first."""
        async with reading(self._engine) as conn:
            rows = await conn.execute(
                sa.select(timers)
                .where(timers.c.kind == kind, timers.c.fired_at.is_(None))
                .order_by(timers.c.due_at, timers.c.id)
            )
            return [_timer_from_row(r) for r in rows.mappings()]

    async def complete(self, timer_id: int, at: datetime | None = None) -> None:
        """Mark a timer done (``fired_at``); it is never claimed again."""
        async with writing(self._engine) as conn:
            await conn.execute(
                sa.update(timers)
                .where(timers.c.id == timer_id)
                .values(fired_at=at or datetime.now(UTC))
            )

    async def cancel_for(self, release_id: int, kind: str | None = None) -> int:
        """Delete a release's timers that have not fired (only those of ``kind``, if given);
        returns how many."""
        conditions = [timers.c.release_id == release_id, timers.c.fired_at.is_(None)]
        if kind is not None:
            conditions.append(timers.c.kind == kind)
        async with reading(self._engine) as conn:
            result = await conn.execute(sa.delete(timers).where(*conditions))
            return int(result.rowcount)
