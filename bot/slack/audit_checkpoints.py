"""Posts signed checkpoints of the audit chain's head to the audit channel.

After every ``slack.audit_checkpoints.every_records`` new records, every
``slack.audit_checkpoints.every`` when any record came since the last checkpoint, and at
shutdown, the audit channel gets one message: ``audit checkpoint {...}`` with the last ``seq``,
its hash, the time and an HMAC signature under the audit key (see storage.checkpoints).
``releasebot audit verify --from-slack`` reads them back.

A checkpoint goes out through the same outbox as the records (kind ``audit_checkpoint``, in the
audit channel's order): it never overtakes a record it covers that is still held back, and a
post Slack refuses is retried like any record. When the last checkpoint was made is read from
the outbox at each look, so a restart (or another replica) goes on counting from it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import AuditCheckpoints
from bot.engine.ports import Clock
from bot.slack.text import plain
from storage.audit_keys import AuditKey
from storage.checkpoints import checkpoint_line, make_checkpoint, parse_checkpoint, signed_by
from storage.db import reading
from storage.outbox import SqlOutbox
from storage.tables import audit_events, slack_outbox

log = logging.getLogger("releasebot.audit")

KIND = "audit_checkpoint"
# Seconds between looks at the chain's head (records are counted at each look).
POLL_EVERY = 5.0
LOOKED_AT = 20  # newest checkpoint rows read for the last valid one


def _aware(at: datetime) -> datetime:
    """SQLite hands datetimes back without their zone (they are stored in UTC)."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


class AuditCheckpointer:
    """Decides when a checkpoint is due and queues it; :meth:`tick` is the scheduler's job.
    ``flush`` sends what the outbox holds for the audit channel (the audit poster's pass)."""

    def __init__(
        self,
        outbox: SqlOutbox,
        flush: Callable[[], Awaitable[Any]],
        channel: str,
        engine: AsyncEngine,
        key: AuditKey,
        rules: AuditCheckpoints,
        clock: Clock,
    ) -> None:
        self._outbox = outbox
        self._flush = flush
        self._channel = channel
        self._engine = engine
        self._key = key
        self._rules = rules
        self._clock = clock
        self._started = clock.now()

    async def _head(self) -> tuple[int, str] | None:
        async with reading(self._engine) as conn:
            row = (
                await conn.execute(
                    sa.select(audit_events.c.seq, audit_events.c.hash)
                    .order_by(audit_events.c.seq.desc())
                    .limit(1)
                )
            ).first()
        return (row.seq, row.hash) if row is not None else None

    async def last(self, head_seq: int | None = None) -> tuple[int, datetime]:
        """(seq, time) of the newest checkpoint queued, or (0, this process's start).

        Only one signed under the bot's key counts, and not one naming a seq past the trail's
        head or a time to come: a row written into the outbox by someone with access to the
        database must not make the bot stop posting checkpoints."""
        async with reading(self._engine) as conn:
            rows = (
                await conn.execute(
                    sa.select(slack_outbox.c.payload, slack_outbox.c.created_at)
                    .where(slack_outbox.c.kind == KIND)
                    .order_by(slack_outbox.c.id.desc())
                    .limit(LOOKED_AT)
                )
            ).all()
        now = self._clock.now()
        for row in rows:
            for item in (row.payload or {}).get("items", []):
                found = parse_checkpoint(str(item.get("line", "")))
                if found is None or not signed_by(found, self._key):
                    continue
                seq = int(found["seq"])
                if head_seq is not None and seq > head_seq:
                    log.error(
                        "the checkpoint of seq %s is past the audit trail's end (seq %s): "
                        "records may have been cut off the end",
                        seq,
                        head_seq,
                    )
                    continue
                at = _aware(row.created_at)
                if at > now:
                    continue
                return seq, at
        return 0, self._started

    async def tick(self) -> bool:
        """Queue a checkpoint if one is due (by record count or by time); whether one was."""
        try:
            head = await self._head()
            if head is None:
                return False
            last_seq, last_at = await self.last(head[0])
            if head[0] <= last_seq:
                return False
            by_count = head[0] - last_seq >= self._rules.every_records
            by_time = self._clock.now() - last_at >= self._rules.every
            if not (by_count or by_time):
                return False
            return await self._post(*head)
        except Exception:
            log.exception("could not post an audit checkpoint; trying again at the next tick")
            return False

    async def final(self) -> bool:
        """At shutdown: a checkpoint of the head, if it is not checkpointed yet, sent before
        returning (with what the outbox still owes the audit channel before it)."""
        try:
            head = await self._head()
            if head is None or head[0] == (await self.last(head[0]))[0]:
                return False
            return await self._post(*head)
        except Exception:
            log.exception("could not post the shutdown audit checkpoint")
            return False

    async def _post(self, seq: int, record_hash: str) -> bool:
        now = self._clock.now()
        line = checkpoint_line(make_checkpoint(seq, record_hash, now, self._key))
        payload = {"items": [{"line": f"audit checkpoint {plain(line)}"}]}
        await self._outbox.add(KIND, self._channel, payload, now, hold=timedelta(0))
        await self._flush()
        return True
