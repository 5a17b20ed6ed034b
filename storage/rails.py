"""Manual locks and freezes (``/release lock``, ``/release freeze``), audited with each change."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.engine.model import AuditEntry, FreezeRecord, LockRecord
from storage.audit import append_entries
from storage.audit_keys import AuditKey
from storage.db import reading, writing
from storage.outbox import OutboxWriter
from storage.tables import freezes, locks


def _lock(row: Any) -> LockRecord:
    return LockRecord(
        row["service"], row["environment"], row["reason"], row["locked_by"], row["at"]
    )


def _freeze(row: Any) -> FreezeRecord:
    return FreezeRecord(row["environment"], row["until"], row["reason"], row["by"], row["at"])


class SqlRailsRepository:
    def __init__(
        self,
        engine: AsyncEngine,
        outbox: OutboxWriter | None = None,
        audit_key: AuditKey | None = None,
    ) -> None:
        self._engine = engine
        self._outbox = outbox
        self._audit_key = audit_key  # the chain's HMAC key (None: plain SHA-256, for tests)

    async def lock(self, lock: LockRecord, audit: Sequence[AuditEntry]) -> bool:
        """Lock service/environment; locking again updates the reason (returns False)."""
        where = (locks.c.service == lock.service, locks.c.environment == lock.environment)
        async with writing(self._engine) as conn:
            found = (await conn.execute(sa.select(locks.c.id).where(*where))).first()
            if found is None:
                await conn.execute(
                    sa.insert(locks).values(
                        service=lock.service,
                        environment=lock.environment,
                        reason=lock.reason,
                        locked_by=lock.locked_by,
                        at=lock.at,
                    )
                )
            else:
                await conn.execute(
                    sa.update(locks)
                    .where(*where)
                    .values(reason=lock.reason, locked_by=lock.locked_by, at=lock.at)
                )
            await append_entries(conn, audit, self._outbox, key=self._audit_key)
        return found is None

    async def unlock(
        self, service: str, environment: str, audit: Sequence[AuditEntry]
    ) -> LockRecord | None:
        where = (locks.c.service == service, locks.c.environment == environment)
        async with writing(self._engine) as conn:
            row = (await conn.execute(sa.select(locks).where(*where))).mappings().first()
            if row is None:
                return None
            await conn.execute(sa.delete(locks).where(*where))
            await append_entries(conn, audit, self._outbox, key=self._audit_key)
        return _lock(row)

    async def get_lock(self, service: str, environment: str) -> LockRecord | None:
        async with reading(self._engine) as conn:
            row = (
                (
                    await conn.execute(
                        sa.select(locks).where(
                            locks.c.service == service, locks.c.environment == environment
                        )
                    )
                )
                .mappings()
                .first()
            )
        return _lock(row) if row is not None else None

    async def freeze(self, freeze: FreezeRecord, audit: Sequence[AuditEntry]) -> None:
        async with writing(self._engine) as conn:
            await conn.execute(
                sa.insert(freezes).values(
                    environment=freeze.environment,
                    until=freeze.until,
                    reason=freeze.reason,
                    by=freeze.by,
                    at=freeze.at,
                )
            )
            await append_entries(conn, audit, self._outbox, key=self._audit_key)

    async def unfreeze(self, environment: str, audit: Sequence[AuditEntry]) -> int:
        async with writing(self._engine) as conn:
            result = await conn.execute(
                sa.delete(freezes).where(freezes.c.environment == environment)
            )
            if result.rowcount:
                await append_entries(conn, audit, self._outbox, key=self._audit_key)
            return int(result.rowcount)

    async def freezes(self, environment: str) -> list[FreezeRecord]:
        async with reading(self._engine) as conn:
            rows = await conn.execute(
                sa.select(freezes)
                .where(freezes.c.environment == environment)
                .order_by(freezes.c.id)
            )
            return [_freeze(r) for r in rows.mappings()]
