"""Posts signed checkpoints of the audit chain's head to the audit channel.

After every ``slack.audit_checkpoints.every_records`` new records, every
``slack.audit_checkpoints.every`` when any record came since the last checkpoint, and at
shutdown, the audit channel gets one message: ``audit checkpoint {...}`` with the last ``seq``,
its hash, the time and an HMAC signature under the audit key (see storage.checkpoints).
``releasebot audit verify --from-slack`` reads them back. A post Slack refuses is tried again
at the next tick; the checkpoint then names the head of that moment.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import AuditCheckpoints
from bot.engine.ports import Clock
from bot.slack.text import plain
from storage.audit_keys import AuditKey
from storage.checkpoints import checkpoint_line, make_checkpoint
from storage.db import reading
from storage.tables import audit_events

log = logging.getLogger("releasebot.audit")

# Seconds between looks at the chain's head (records are counted at each look).
POLL_EVERY = 5.0


class AuditCheckpointer:
    """Decides when a checkpoint is due and posts it; :meth:`tick` is the scheduler's job."""

    def __init__(
        self,
        client: Any,
        channel: str,
        engine: AsyncEngine,
        key: AuditKey,
        rules: AuditCheckpoints,
        clock: Clock,
    ) -> None:
        self._client = client
        self._channel = channel
        self._engine = engine
        self._key = key
        self._rules = rules
        self._clock = clock
        self._last_seq = 0
        self._last_at = clock.now()

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

    async def tick(self) -> bool:
        """Post a checkpoint if one is due (by record count or by time); whether one went."""
        try:
            head = await self._head()
            if head is None or head[0] <= self._last_seq:
                return False
            by_count = head[0] - self._last_seq >= self._rules.every_records
            by_time = self._clock.now() - self._last_at >= self._rules.every
            if not (by_count or by_time):
                return False
            return await self._post(*head)
        except Exception:
            log.exception("could not post an audit checkpoint; trying again at the next tick")
            return False

    async def final(self) -> bool:
        """At shutdown: a checkpoint of the head, if it is not checkpointed yet."""
        try:
            head = await self._head()
            if head is None or head[0] == self._last_seq:
                return False
            return await self._post(*head)
        except Exception:
            log.exception("could not post the shutdown audit checkpoint")
            return False

    async def _post(self, seq: int, record_hash: str) -> bool:
        now = self._clock.now()
        line = checkpoint_line(make_checkpoint(seq, record_hash, now, self._key))
        await self._client.chat_postMessage(
            channel=self._channel, text=f"audit checkpoint {plain(line)}"
        )
        self._last_seq, self._last_at = seq, now
        return True
