"""The webhook outbox: release events written to the database, delivered later.

:class:`SqlWebhookOutbox` is the engine's :class:`~bot.engine.ports.EventSink`. For each audit
entry that is a webhook event (see :mod:`bot.webhooks.payloads`) and each webhook subscribed
to it, it inserts one ``webhook_outbox`` row holding the finished JSON payload. That is all a
release waits for: one short INSERT, never a network call. :class:`bot.webhooks.sender.
WebhookSender` sends the rows from the scheduler, retries them, and marks them done::

    outbox = SqlWebhookOutbox(engine, config.webhooks, clock)
    service = ReleaseService(..., events=outbox)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Webhook
from bot.engine.model import AuditEntry, Release
from bot.engine.ports import Clock
from bot.webhooks.payloads import event_for, payload_for
from storage.db import reading, writing
from storage.tables import webhook_outbox

log = logging.getLogger("releasebot.webhooks")


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One outbox row: an event for one webhook, pending, delivered or given up."""

    id: int
    webhook: str
    event: str
    release_id: int | None
    payload: dict[str, Any]
    created_at: datetime
    attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    failed_at: datetime | None
    last_status: int | None
    last_error: str | None

    @property
    def status(self) -> str:
        """``delivered``, ``failed`` (given up) or ``pending``."""
        if self.delivered_at is not None:
            return "delivered"
        if self.failed_at is not None:
            return "failed"
        return "pending"


def item_from_row(row: Any) -> OutboxItem:
    return OutboxItem(
        id=row["id"],
        webhook=row["webhook"],
        event=row["event"],
        release_id=row["release_id"],
        payload=row["payload"] or {},
        created_at=row["created_at"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        delivered_at=row["delivered_at"],
        failed_at=row["failed_at"],
        last_status=row["last_status"],
        last_error=row["last_error"],
    )


class SqlWebhookOutbox:
    """Queues release events for the configured webhooks in the ``webhook_outbox`` table."""

    def __init__(self, engine: AsyncEngine, webhooks: Sequence[Webhook], clock: Clock) -> None:
        self._engine = engine
        self._webhooks = list(webhooks)
        self._clock = clock

    def rows_for(self, release: Release, entries: Sequence[AuditEntry]) -> list[dict[str, Any]]:
        """The outbox rows ``entries`` make (without touching the database)."""
        now = self._clock.now()
        rows = []
        for entry in entries:
            event = event_for(entry.action)
            if event is None:
                continue
            for hook in self._webhooks:
                payload = payload_for(hook, event, release, entry)
                if payload is None:
                    continue
                rows.append(
                    {
                        "webhook": hook.name,
                        "event": event,
                        "release_id": release.id,
                        "payload": payload,
                        "created_at": now,
                        "attempts": 0,
                        "next_attempt_at": now,
                    }
                )
        return rows

    async def recorded(self, release: Release, entries: Sequence[AuditEntry]) -> None:
        """Queue the webhook events among ``entries``: one INSERT, no network."""
        if not self._webhooks:
            return
        rows = self.rows_for(release, entries)
        if not rows:
            return
        async with writing(self._engine) as conn:
            await conn.execute(sa.insert(webhook_outbox), rows)
        log.debug(
            "queued %d webhook event(s) for %s",
            len(rows),
            release.key,
            extra={"release_id": release.key},
        )

    async def items(
        self, webhook: str | None = None, release_id: int | None = None
    ) -> list[OutboxItem]:
        """Outbox rows, oldest first (all, or one webhook's, or one release's)."""
        query = sa.select(webhook_outbox).order_by(webhook_outbox.c.id)
        if webhook is not None:
            query = query.where(webhook_outbox.c.webhook == webhook)
        if release_id is not None:
            query = query.where(webhook_outbox.c.release_id == release_id)
        async with reading(self._engine) as conn:
            rows = await conn.execute(query)
            return [item_from_row(r) for r in rows.mappings()]
