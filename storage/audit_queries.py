"""Reading the audit trail for people (``/release audit``), and the drift ledger.

Records come back as plain dicts with every column (``detail`` parsed), like
:func:`storage.audit.iter_audit`::

    page = await recent_audit(engine, "tax-api", since=None, limit=20)           # newest first
    older = await recent_audit(engine, "tax-api", None, 20, before_seq=page[-1]["seq"])
    window = await audit_from(engine, "tax-api", since=monday, limit=20)         # from monday on
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.engine.drift import DRIFT_ACTION
from bot.engine.model import AuditEntry
from storage.audit import AUDIT_LOCK_KEY, append_entries
from storage.audit_keys import AuditKey
from storage.db import reading, writing
from storage.outbox import OutboxWriter
from storage.tables import audit_events

# How many earlier drift records of one service/environment are compared against.
_DRIFT_MEMORY = 200


def _record(row: Any) -> dict[str, Any]:
    record = dict(row)
    record["detail"] = json.loads(record["detail"])
    return record


def _where(
    service: str | None,
    since: datetime | None,
    before_seq: int | None = None,
    after_seq: int | None = None,
) -> Any:
    conditions = []
    if service is not None:
        conditions.append(audit_events.c.service == service)
    if since is not None:
        conditions.append(audit_events.c.at >= since)
    if before_seq is not None:
        conditions.append(audit_events.c.seq < before_seq)
    if after_seq is not None:
        conditions.append(audit_events.c.seq > after_seq)
    return sa.and_(sa.true(), *conditions)


async def recent_audit(
    engine: AsyncEngine,
    service: str | None,
    since: datetime | None,
    limit: int,
    before_seq: int | None = None,
) -> list[dict[str, Any]]:
    """Up to ``limit`` records, newest first: of ``service`` (all when None), at or after
    ``since``, and older than ``before_seq`` (to page backwards)."""
    async with reading(engine) as conn:
        result = await conn.execute(
            sa.select(audit_events)
            .where(_where(service, since, before_seq))
            .order_by(audit_events.c.seq.desc())
            .limit(limit)
        )
        return [_record(row) for row in result.mappings()]


async def audit_from(
    engine: AsyncEngine,
    service: str | None,
    since: datetime | None,
    limit: int,
    after_seq: int | None = None,
) -> list[dict[str, Any]]:
    """The first ``limit`` records at or after ``since`` (and after ``after_seq``), in chain
    order, returned newest first: one page of the trail that starts at a time."""
    async with reading(engine) as conn:
        result = await conn.execute(
            sa.select(audit_events)
            .where(_where(service, since, after_seq=after_seq))
            .order_by(audit_events.c.seq)
            .limit(limit)
        )
        rows = [_record(row) for row in result.mappings()]
    rows.reverse()
    return rows


class SqlDriftLedger:
    """The drift records in the audit trail are the memory of what was announced: a drift is
    recorded (and so announced) once per service, environment and deployment, even when
    several replicas find it at the same moment."""

    def __init__(
        self,
        engine: AsyncEngine,
        outbox: OutboxWriter | None = None,
        audit_key: AuditKey | None = None,
    ) -> None:
        self._engine = engine
        self._outbox = outbox
        self._audit_key = audit_key  # the chain's HMAC key (None: plain SHA-256, for tests)

    async def record_once(self, entry: AuditEntry, deployment_id: str) -> bool:
        async with writing(self._engine) as conn:
            if conn.dialect.name == "postgresql":
                # The audit writers' lock, taken before looking: a second replica waits here and
                # then sees the first one's record. (SQLite's writing transactions already hold
                # the database's write lock.)
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(AUDIT_LOCK_KEY)))
            if await _already_recorded(conn, entry, deployment_id):
                return False
            await append_entries(conn, [entry], self._outbox, key=self._audit_key)
        return True

    async def announced(self, service: str, environment: str) -> list[str]:
        """Deployment ids already announced as drift there, newest first."""
        async with reading(self._engine) as conn:
            rows = await _drift_details(conn, service, environment)
        return [str(d.get("deployment_id")) for d in rows]


async def _drift_details(
    conn: AsyncConnection, service: str | None, environment: str | None
) -> list[dict[str, Any]]:
    result = await conn.execute(
        sa.select(audit_events.c.detail)
        .where(
            audit_events.c.action == DRIFT_ACTION,
            audit_events.c.service == service,
            audit_events.c.environment == environment,
        )
        .order_by(audit_events.c.seq.desc())
        .limit(_DRIFT_MEMORY)
    )
    details = []
    for (text,) in result:
        try:
            details.append(json.loads(text))
        except ValueError:
            continue  # an edited record is verify's business; it remembers nothing
    return details


async def _already_recorded(conn: AsyncConnection, entry: AuditEntry, deployment_id: str) -> bool:
    details = await _drift_details(conn, entry.service, entry.environment)
    return any(d.get("deployment_id") == deployment_id for d in details)
