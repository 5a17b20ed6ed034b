"""SQL implementations of the engine's storage ports, over an AsyncEngine.

* :class:`SqlReleaseRepository` implements ``bot.engine.ports.ReleaseRepository``.
* :class:`SqlVoteRepository` records approval votes, once per person and release.
* :class:`storage.timers.SqlTimerRepository` (re-exported here) keeps due work.

Every change is one transaction: the release row (compare-and-swap on ``revision``), its step
and its audit records commit together or not at all::

    repo = SqlReleaseRepository(engine)
    stored = await repo.create(release, [AuditEntry("U1", "release.requested", now)])
    stored = await repo.save(stored.copy(state=State.APPROVED), [entry])   # revision + 1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from operator import attrgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.engine.errors import ConcurrentUpdate, NotFound, Refused
from bot.engine.model import AuditEntry, Kind, Release, Step, StepStatus, Strategy, Vote
from bot.engine.states import TERMINAL, State
from storage.audit import append_entries, entry_from_row
from storage.audit_keys import AuditKey
from storage.db import reading, writing
from storage.outbox import OutboxWriter
from storage.tables import approvals, audit_events, releases, steps
from storage.timers import SqlTimerRepository, Timer

__all__ = ["SqlReleaseRepository", "SqlTimerRepository", "SqlVoteRepository", "Timer"]

# Release fields stored in a column of the same name (id, revision and steps are handled apart).
_PLAIN_FIELDS = [
    c.name for c in releases.columns if c.name not in ("id", "revision", "active_slot", "plan")
]
_ENUMS: dict[str, type[Any]] = {"kind": Kind, "strategy": Strategy, "state": State}


def _upsert_insert(conn: AsyncConnection) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (both SQLite and PostgreSQL do)."""
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _release_values(release: Release) -> dict[str, Any]:
    values = {name: getattr(release, name) for name in _PLAIN_FIELDS}
    for name in _ENUMS:
        values[name] = str(values[name])
    values["plan"] = list(release.plan)
    # The unique constraint on active_slot is what allows one active release per target.
    values["active_slot"] = release.target if release.state.holds_slot else None
    return values


def _changeable(release: Release) -> dict[str, Any]:
    """What ``save`` writes: everything but where the card lives, which only ``set_card``
    changes (the engine's copy may predate the card being posted)."""
    values = _release_values(release)
    del values["channel"], values["message_ts"]
    return values


def _release_from_row(row: Any, release_steps: list[Step]) -> Release:
    values = {name: row[name] for name in _PLAIN_FIELDS}
    for name, enum in _ENUMS.items():
        values[name] = enum(values[name])
    return Release(
        **values,
        plan=tuple(row["plan"]),
        id=row["id"],
        revision=row["revision"],
        steps=release_steps,
    )


def _step_values(release_id: int, step: Step) -> dict[str, Any]:
    return {
        "release_id": release_id,
        "index": step.index,
        "percent": step.percent,
        "status": str(step.status),
        "deployment_id": step.deployment_id,
        "intended_at": step.intended_at,
        "deployed_at": step.deployed_at,
        "gate": step.gate,
    }


def _step_from_row(row: Any) -> Step:
    return Step(
        index=row["index"],
        percent=row["percent"],
        status=StepStatus(row["status"]),
        deployment_id=row["deployment_id"],
        intended_at=row["intended_at"],
        deployed_at=row["deployed_at"],
        gate=row["gate"],
    )


def _stamped(entries: Sequence[AuditEntry], release: Release) -> list[AuditEntry]:
    """Entries about ``release`` that do not say so yet get its id, key and target."""
    return [
        replace(
            e,
            release_id=release.id if e.release_id is None else e.release_id,
            release_key=release.key if e.release_key is None else e.release_key,
            service=release.service if e.service is None else e.service,
            environment=release.environment if e.environment is None else e.environment,
        )
        for e in entries
    ]


def _is_slot_conflict(exc: sa.exc.IntegrityError) -> bool:
    # Both drivers name the constraint or column: uq_releases_active_slot / releases.active_slot.
    return "active_slot" in str(exc.orig)


# ``save`` takes a ``steps`` argument (the port's name); the table is reached by this alias.
steps_table = steps


class SqlReleaseRepository:
    """Releases, their steps and their audit records in SQL (see the module docstring)."""

    def __init__(
        self,
        engine: AsyncEngine,
        outbox: OutboxWriter | None = None,
        audit_key: AuditKey | None = None,
    ) -> None:
        self._engine = engine
        self._outbox = outbox
        self._audit_key = audit_key  # the chain's HMAC key (None: plain SHA-256, for tests)

    async def _refusal(self, release: Release) -> Refused:
        holder = await self.active_for(release.service, release.environment)
        named = f" {holder.key}" if holder is not None else ""
        return Refused(f"{release.target} already has an active release{named}")

    async def create(self, release: Release, audit: Sequence[AuditEntry]) -> Release:
        """Insert ``release`` with its steps and audit records; returns it with its new id."""
        try:
            async with writing(self._engine) as conn:
                values = _release_values(release)
                result = await conn.execute(
                    sa.insert(releases).values(**values, revision=release.revision)
                )
                key = result.inserted_primary_key
                assert key is not None
                stored = release.copy(id=int(key[0]), steps=list(release.steps))
                if stored.steps:
                    assert stored.id is not None
                    await conn.execute(
                        sa.insert(steps), [_step_values(stored.id, s) for s in stored.steps]
                    )
                await append_entries(
                    conn, _stamped(audit, stored), self._outbox, stored, key=self._audit_key
                )
        except sa.exc.IntegrityError as exc:
            if not _is_slot_conflict(exc):
                raise
            raise await self._refusal(release) from exc
        return stored

    async def save(
        self, release: Release, audit: Sequence[AuditEntry], steps: Sequence[Step] = ()
    ) -> Release:
        """Store ``release`` if nobody changed it since it was read (its ``revision``), upsert
        ``steps`` and append ``audit``, all in one transaction; returns it at ``revision + 1``.

        Raises ``ConcurrentUpdate`` when the stored revision moved on, ``Refused`` when the
        release would become active while another holds its service/environment.
        """
        if release.id is None:
            raise ValueError("save() needs a stored release; create() it first")
        try:
            async with writing(self._engine) as conn:
                result = await conn.execute(
                    sa.update(releases)
                    .where(releases.c.id == release.id, releases.c.revision == release.revision)
                    .values(**_changeable(release), revision=release.revision + 1)
                )
                if result.rowcount != 1:
                    raise ConcurrentUpdate(release.key)
                for step in steps:
                    values = _step_values(release.id, step)
                    insert = _upsert_insert(conn)(steps_table).values(values)
                    changed = {name: insert.excluded[name] for name in values}
                    await conn.execute(
                        insert.on_conflict_do_update(
                            index_elements=[steps_table.c.release_id, steps_table.c.index],
                            set_=changed,
                        )
                    )
                await append_entries(
                    conn, _stamped(audit, release), self._outbox, release, key=self._audit_key
                )
        except sa.exc.IntegrityError as exc:
            if not _is_slot_conflict(exc):
                raise
            raise await self._refusal(release) from exc
        touched = {step.index for step in steps}
        merged = sorted(
            [s for s in release.steps if s.index not in touched] + list(steps),
            key=attrgetter("index"),
        )
        return release.copy(revision=release.revision + 1, steps=merged)

    async def _load(
        self, conn: AsyncConnection, where: Any, *order: Any, limit: int | None = None
    ) -> list[Release]:
        query = sa.select(releases).where(where).order_by(*order)
        if limit is not None:
            query = query.limit(limit)
        rows = list((await conn.execute(query)).mappings())
        if not rows:
            return []
        by_release: dict[int, list[Step]] = {row["id"]: [] for row in rows}
        step_rows = await conn.execute(
            sa.select(steps)
            .where(steps.c.release_id.in_(list(by_release)))
            .order_by(steps.c.release_id, steps.c.index)
        )
        for step_row in step_rows.mappings():
            by_release[step_row["release_id"]].append(_step_from_row(step_row))
        return [_release_from_row(row, by_release[row["id"]]) for row in rows]

    async def get(self, release_id: int) -> Release | None:
        """The release with its steps, or None."""
        async with reading(self._engine) as conn:
            found = await self._load(conn, releases.c.id == release_id, releases.c.id)
        return found[0] if found else None

    async def set_card(self, release_id: int, channel: str, ts: str) -> None:
        """Remember where the release's card lives (no revision bump, no audit record)."""
        async with writing(self._engine) as conn:
            result = await conn.execute(
                sa.update(releases)
                .where(releases.c.id == release_id)
                .values(channel=channel, message_ts=ts)
            )
            if result.rowcount != 1:
                raise NotFound(f"R-{release_id} does not exist")

    async def unfinished(self) -> list[Release]:
        """Every release not in a terminal state, oldest first."""
        terminal = [str(s) for s in TERMINAL]
        async with reading(self._engine) as conn:
            return await self._load(conn, releases.c.state.not_in(terminal), releases.c.id)

    async def active_for(self, service: str, environment: str) -> Release | None:
        """The release holding service/environment (deploying or verifying)."""
        slot = f"{service}/{environment}"
        async with reading(self._engine) as conn:
            found = await self._load(conn, releases.c.active_slot == slot, releases.c.id)
        return found[0] if found else None

    async def queued(self, service: str, environment: str) -> list[Release]:
        """Approved releases waiting for service/environment, in the order they will start."""
        async with reading(self._engine) as conn:
            return await self._load(
                conn,
                sa.and_(
                    releases.c.service == service,
                    releases.c.environment == environment,
                    releases.c.state == str(State.APPROVED),
                ),
                releases.c.id,
            )

    async def succeeded_versions_with_tag(
        self, service: str, environment: str, tag: str
    ) -> list[str]:
        """The version ids of tag ``tag`` that succeeded in service/environment."""
        async with reading(self._engine) as conn:
            found = await conn.execute(
                sa.select(releases.c.version_id)
                .where(
                    releases.c.service == service,
                    releases.c.environment == environment,
                    releases.c.version_tag == tag,
                    releases.c.state == str(State.SUCCEEDED),
                )
                .distinct()
            )
            return [row[0] for row in found]

    async def history(
        self, service: str | None, environment: str | None, limit: int, before_id: int | None = None
    ) -> list[Release]:
        """Releases newest first, optionally filtered, paged by ``before_id``."""
        conditions = []
        if service is not None:
            conditions.append(releases.c.service == service)
        if environment is not None:
            conditions.append(releases.c.environment == environment)
        if before_id is not None:
            conditions.append(releases.c.id < before_id)
        async with reading(self._engine) as conn:
            return await self._load(
                conn, sa.and_(sa.true(), *conditions), releases.c.id.desc(), limit=limit
            )

    async def audit_for(self, release_id: int) -> list[AuditEntry]:
        """A release's audit records, oldest first."""
        async with reading(self._engine) as conn:
            result = await conn.execute(
                sa.select(audit_events)
                .where(audit_events.c.release_id == release_id)
                .order_by(audit_events.c.seq)
            )
            return [entry_from_row(dict(row)) for row in result.mappings()]

    async def append_audit(self, audit: Sequence[AuditEntry]) -> None:
        """Audit facts that change no release (refusals, locks, ...)."""
        async with writing(self._engine) as conn:
            await append_entries(conn, audit, self._outbox, key=self._audit_key)


class SqlVoteRepository:
    """Approval votes. A person's vote on a release is stored once; repeats are no-ops, even
    when the same click arrives twice at the same moment (the unique constraint decides)."""

    def __init__(
        self,
        engine: AsyncEngine,
        outbox: OutboxWriter | None = None,
        audit_key: AuditKey | None = None,
    ) -> None:
        self._engine = engine
        self._outbox = outbox
        self._audit_key = audit_key  # the chain's HMAC key (None: plain SHA-256, for tests)

    async def add_vote(self, vote: Vote, audit: Sequence[AuditEntry] = ()) -> bool:
        """Record ``vote``; False if that person already voted on that release. ``audit``
        records are written with the vote, and only if it counted."""
        async with writing(self._engine) as conn:
            insert = _upsert_insert(conn)(approvals).values(
                release_id=vote.release_id,
                version_id=vote.version_id,
                user_id=vote.user_id,
                approve=vote.approve,
                at=vote.at,
                reason=vote.reason,
            )
            # RETURNING says whether the row went in (rowcount is not reliable for this).
            inserted = await conn.execute(
                insert.on_conflict_do_nothing(
                    index_elements=[approvals.c.release_id, approvals.c.user_id]
                ).returning(approvals.c.id)
            )
            if inserted.first() is None:
                return False
            await append_entries(conn, audit, self._outbox, key=self._audit_key)
        return True

    async def votes_many(self, release_ids: Sequence[int]) -> dict[int, list[Vote]]:
        """The votes on several releases in one query, each list in the order cast."""
        found: dict[int, list[Vote]] = {rid: [] for rid in release_ids}
        if not found:
            return found
        async with reading(self._engine) as conn:
            result = await conn.execute(
                sa.select(approvals)
                .where(approvals.c.release_id.in_(list(found)))
                .order_by(approvals.c.at, approvals.c.id)
            )
            for row in result.mappings():
                found[row["release_id"]].append(
                    Vote(
                        release_id=row["release_id"],
                        version_id=row["version_id"],
                        user_id=row["user_id"],
                        approve=row["approve"],
                        at=row["at"],
                        reason=row["reason"],
                    )
                )
        return found

    async def votes(self, release_id: int) -> list[Vote]:
        """The votes on a release, in the order they were cast."""
        async with reading(self._engine) as conn:
            result = await conn.execute(
                sa.select(approvals)
                .where(approvals.c.release_id == release_id)
                .order_by(approvals.c.at, approvals.c.id)
            )
            return [
                Vote(
                    release_id=row["release_id"],
                    version_id=row["version_id"],
                    user_id=row["user_id"],
                    approve=row["approve"],
                    at=row["at"],
                    reason=row["reason"],
                )
                for row in result.mappings()
            ]
