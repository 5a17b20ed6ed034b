"""The outbox: what other systems are owed, written in the same transaction as the change.

:class:`OutboxWriter` is handed to the repositories; whenever audit records are appended
(:func:`storage.audit.append_entries`) it writes, in that same transaction, the audit channel's
row (plain data: each record's ``seq``, actor, action, target — rendered at send time by
``bot.slack``) and one webhook row per subscribed event. A crash or a database error between
the change and its posts cannot lose them: they commit together or not at all.

The Slack outbox: messages kept in the database until Slack has taken them.

The database is the source of truth: a message is written before it is sent, and only a
successful send marks it done, so a Slack outage (or a crash) delays messages, never loses
them::

    outbox = SqlOutbox(engine)
    row = await outbox.add("audit", "C0AUDIT", {"items": [...]}, now, hold=timedelta(seconds=30))
    ...                                     # send it, then
    await outbox.sent(row.id, now)          # or outbox.failed(row.id, retry_at, why)
    for row in await outbox.claim_due(now, lease=timedelta(seconds=30)):
        ...                                 # the retry job: send each again

``next_attempt_at`` doubles as the lease: claiming a row moves it one lease ahead, so two
replicas never send the same row at once, and a replica that dies mid-send leaves the row to be
claimed again when the lease runs out. Once sent, ``next_attempt_at`` is NULL: the index on
it holds only what is still owed, and :meth:`SqlOutbox.prune` deletes old sent rows (the audit
records themselves live in ``audit_events``; this table only remembers what Slack still lacks).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.engine.model import AuditEntry, Release
from storage.db import claim_rows, reading, writing
from storage.tables import slack_outbox, webhook_outbox

# Errors are stored for people to read; a whole traceback is not needed.
ERROR_MAX = 500
# pg_advisory_xact_lock key held while a sender claims Slack outbox rows ("rb_obx"): claims
# one after another, so a row is never claimed while an earlier one of its channel is being
# leased by another replica (the channel's order).
OUTBOX_CLAIM_LOCK = 0x72625F6F6278

T = TypeVar("T")
R = TypeVar("R")


AUDIT_KIND = "audit"

WebhookRows = Callable[[Release, Sequence[AuditEntry]], list[dict[str, Any]]]


def audit_item(seq: int, entry: AuditEntry) -> dict[str, Any]:
    """One audit record as the audit channel's outbox holds it: plain data."""
    return {
        "seq": seq,
        "release_id": entry.release_id,
        "release_key": entry.release_key,
        "service": entry.service,
        "environment": entry.environment,
        "action": entry.action,
        "before": entry.before,
        "after": entry.after,
        "actor": entry.actor,
    }


class OutboxWriter:
    """Writes a change's outbox rows inside its transaction (see the module docstring)."""

    def __init__(
        self,
        audit_channel: str | None,
        webhook_rows: WebhookRows | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.audit_channel = audit_channel
        self.webhook_rows = webhook_rows
        self.clock = clock

    async def write(
        self,
        conn: AsyncConnection,
        stored: Sequence[tuple[int, AuditEntry]],
        release: Release | None,
    ) -> None:
        if not stored:
            return
        now = self.clock() if self.clock is not None else stored[0][1].at
        if self.audit_channel:
            payload = {"items": [audit_item(seq, entry) for seq, entry in stored]}
            await conn.execute(
                sa.insert(slack_outbox).values(
                    kind=AUDIT_KIND,
                    channel=self.audit_channel,
                    payload=payload,
                    created_at=now,
                    attempts=0,
                    next_attempt_at=now,
                )
            )
        if self.webhook_rows is not None and release is not None:
            rows = self.webhook_rows(release, [entry for _, entry in stored])
            if rows:
                await conn.execute(sa.insert(webhook_outbox), rows)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    kind: str
    channel: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    sent_at: datetime | None = None
    last_error: str | None = None


def _message(row: Any) -> OutboxMessage:
    return OutboxMessage(
        id=row["id"],
        kind=row["kind"],
        channel=row["channel"],
        payload=row["payload"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        next_attempt_at=row["next_attempt_at"],
        sent_at=row["sent_at"],
        last_error=row["last_error"],
    )


class GroupCommit(Generic[T, R]):
    """Writes that arrive while one is in flight go together in the next transaction: alone, a
    write is made at once; under load (many releases moving at the same moment) one
    transaction stores many. ``write`` gets the items in arrival order and returns one result
    per item; each caller gets its own result, or the batch's error."""

    def __init__(self, write: Callable[[list[T]], Awaitable[list[R]]]) -> None:
        self._write = write
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="outbox-group-commit")
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                results = await self._write([item for item, _ in batch])
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


class SqlOutbox:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._adds: GroupCommit[dict[str, Any], OutboxMessage] = GroupCommit(self._insert)
        self._sents: GroupCommit[dict[str, Any], None] = GroupCommit(self._mark_sent)

    async def add(
        self, kind: str, channel: str, payload: dict[str, Any], now: datetime, hold: timedelta
    ) -> OutboxMessage:
        """Store a message whose first attempt starts now (held for ``hold``, like a claim).
        Returns once it is committed."""
        row = {
            "kind": kind,
            "channel": channel,
            "payload": payload,
            "created_at": now,
            "attempts": 1,
            "next_attempt_at": now + hold,
        }
        return await self._adds.submit(row)

    async def _insert(self, rows: list[dict[str, Any]]) -> list[OutboxMessage]:
        async with writing(self._engine) as conn:
            result = await conn.execute(
                sa.insert(slack_outbox).returning(
                    *slack_outbox.columns, sort_by_parameter_order=True
                ),
                rows,
            )
            return [_message(row) for row in result.mappings()]

    async def claim_due(
        self, now: datetime, lease: timedelta, limit: int = 20
    ) -> list[OutboxMessage]:
        """Lease up to ``limit`` unsent messages that are due, oldest first, counting an attempt
        (concurrent claimers never get the same row: :func:`storage.db.claim_rows`).

        In order per channel: a message is not due while an earlier one of its channel is
        unsent and waiting (held back, retried later, or leased to a sender right now)."""
        earlier = slack_outbox.alias("earlier")
        waiting_before = (
            sa.exists()
            .where(
                earlier.c.channel == slack_outbox.c.channel,
                earlier.c.id < slack_outbox.c.id,
                earlier.c.sent_at.is_(None),
                earlier.c.next_attempt_at > now,
            )
            .correlate(slack_outbox)
        )
        due = sa.and_(
            slack_outbox.c.sent_at.is_(None),
            slack_outbox.c.next_attempt_at <= now,
            ~waiting_before,
        )
        rows = await claim_rows(
            self._engine,
            slack_outbox,
            due,
            (slack_outbox.c.id,),
            limit,
            {"next_attempt_at": now + lease, "attempts": slack_outbox.c.attempts + 1},
            one_at_a_time=OUTBOX_CLAIM_LOCK,
        )
        claimed = [_message(row) for row in rows]
        return sorted(claimed, key=lambda m: m.id)

    async def sent(self, message_id: int, at: datetime) -> None:
        await self._sents.submit({"message_id": message_id, "at": at})

    async def sent_many(self, message_ids: Sequence[int], at: datetime) -> None:
        """Mark several messages sent in one transaction (a sender's pass, in order)."""
        if message_ids:
            await self._mark_sent([{"message_id": i, "at": at} for i in message_ids])

    async def _mark_sent(self, marks: list[dict[str, Any]]) -> list[None]:
        async with writing(self._engine) as conn:
            await conn.execute(
                sa.update(slack_outbox)
                .where(slack_outbox.c.id == sa.bindparam("message_id"))
                .values(sent_at=sa.bindparam("at"), next_attempt_at=None, last_error=None),
                marks,
            )
        return [None] * len(marks)

    async def failed(self, message_id: int, retry_at: datetime, error: str) -> None:
        """Leave the message unsent, to be tried again from ``retry_at``."""
        async with writing(self._engine) as conn:
            await conn.execute(
                sa.update(slack_outbox)
                .where(slack_outbox.c.id == message_id, slack_outbox.c.sent_at.is_(None))
                .values(next_attempt_at=retry_at, last_error=error[:ERROR_MAX])
            )

    async def postpone(self, message_id: int, retry_at: datetime, why: str) -> None:
        """Not sent, and not for a failure: try again from ``retry_at`` without counting the
        attempt that was claimed (so a later failure's backoff starts where it should)."""
        async with writing(self._engine) as conn:
            await conn.execute(
                sa.update(slack_outbox)
                .where(slack_outbox.c.id == message_id, slack_outbox.c.sent_at.is_(None))
                .values(
                    next_attempt_at=retry_at,
                    attempts=sa.func.max(slack_outbox.c.attempts - 1, 0)
                    if conn.dialect.name == "sqlite"
                    else sa.func.greatest(slack_outbox.c.attempts - 1, 0),
                    last_error=why[:ERROR_MAX],
                )
            )

    async def prune(self, sent_before: datetime) -> int:
        """Delete messages sent before ``sent_before``; how many."""
        async with writing(self._engine) as conn:
            result = await conn.execute(
                sa.delete(slack_outbox).where(
                    slack_outbox.c.sent_at.is_not(None), slack_outbox.c.sent_at < sent_before
                )
            )
            return int(result.rowcount)

    async def unsent(self, limit: int = 100) -> list[OutboxMessage]:
        """Messages Slack has not taken yet, oldest first (for operators and tests)."""
        async with reading(self._engine) as conn:
            result = await conn.execute(
                sa.select(slack_outbox)
                .where(slack_outbox.c.sent_at.is_(None))
                .order_by(slack_outbox.c.id)
                .limit(limit)
            )
            return [_message(row) for row in result.mappings()]

    async def count_unsent(self) -> int:
        async with reading(self._engine) as conn:
            found = await conn.scalar(
                sa.select(sa.func.count())
                .select_from(slack_outbox)
                .where(slack_outbox.c.sent_at.is_(None))
            )
        return int(found or 0)
