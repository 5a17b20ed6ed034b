"""What the engine needs from the outside world, as Protocols. Adapters implement them;
tests use the fakes in ``tests/fakes.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from bot.engine.migrations import AppliedMigration, Finding, MigrationFile
from bot.engine.model import (
    AuditEntry,
    Deployment,
    FreezeRecord,
    LockRecord,
    ProbeAnswer,
    Release,
    Step,
    Timer,
    VersionMetrics,
    VersionReport,
    VersionShare,
    Vote,
    WorkerVersion,
)

if TYPE_CHECKING:
    from bot.engine.notices import Notice


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class ReleaseRepository(Protocol):
    """Durable releases. Every method that changes a release writes its audit entries in the
    same transaction, and refuses (``ConcurrentUpdate``) when the stored revision moved on."""

    async def create(self, release: Release, audit: Sequence[AuditEntry]) -> Release:
        """Insert a new release (assigning ``id``), with its audit entries; returns it stored.

        Raises ``Refused`` when the release would be active while another active release holds
        the same service/environment (enforced by a unique index)."""
        ...

    async def save(
        self, release: Release, audit: Sequence[AuditEntry], steps: Sequence[Step] = ()
    ) -> Release:
        """Store ``release`` if its stored revision is still ``release.revision``; upsert
        ``steps`` (by release and index) and append ``audit`` in the same transaction.
        Returns the release with ``revision + 1``. ``ConcurrentUpdate`` otherwise."""
        ...

    async def get(self, release_id: int) -> Release | None:
        """The release with its steps, or None."""
        ...

    async def set_card(self, release_id: int, channel: str, ts: str) -> None:
        """Remember where the release's card lives (not a state change; no revision bump)."""
        ...

    async def unfinished(self) -> list[Release]:
        """Every release not in a terminal state, oldest first (for resuming after a restart)."""
        ...

    async def active_for(self, service: str, environment: str) -> Release | None:
        """The release holding service/environment (approved, deploying or verifying)."""
        ...

    async def queued(self, service: str, environment: str) -> list[Release]:
        """Approved releases waiting for service/environment, in the order they will start."""
        ...

    async def succeeded_versions_with_tag(
        self, service: str, environment: str, tag: str
    ) -> list[str]:
        """The version ids of tag ``tag`` that succeeded in service/environment."""
        ...

    async def history(
        self, service: str | None, environment: str | None, limit: int, before_id: int | None = None
    ) -> list[Release]:
        """Releases newest first, optionally filtered, paged by ``before_id``."""
        ...

    async def audit_for(self, release_id: int) -> list[AuditEntry]:
        """A release's audit entries, oldest first."""
        ...

    async def append_audit(self, audit: Sequence[AuditEntry]) -> None:
        """Audit facts that change no release (refusals, locks, ...)."""
        ...


class VoteRepository(Protocol):
    async def add_vote(self, vote: Vote, audit: Sequence[AuditEntry] = ()) -> bool:
        """Record a vote (and its audit entries) once; False when that person already voted."""
        ...

    async def votes(self, release_id: int) -> list[Vote]: ...

    async def votes_many(self, release_ids: Sequence[int]) -> dict[int, list[Vote]]:
        """The votes on several releases at once (one query)."""
        ...


class TimerRepository(Protocol):
    """Durable timers, leased so that one replica runs each."""

    async def schedule(
        self,
        kind: str,
        due_at: datetime,
        release_id: int | None = None,
        payload: dict[str, Any] | None = None,
    ) -> int: ...

    async def claim_due(
        self, now: datetime, owner: str, lease: timedelta, limit: int = 50
    ) -> list[Timer]: ...

    async def claim(
        self, timer_id: int, now: datetime, owner: str, lease: timedelta
    ) -> Timer | None: ...

    async def extend(self, timer_id: int, owner: str, until: datetime) -> bool: ...

    async def complete(self, timer_id: int, at: datetime | None = None) -> None: ...

    async def cancel_for(self, release_id: int, kind: str | None = None) -> int: ...

    async def pending(self, release_id: int, kind: str | None = None) -> list[Timer]: ...

    async def pending_kind(self, kind: str) -> list[Timer]:
        """Timers of ``kind`` that have not fired, whatever release (or none) they are for."""
        ...


class RailsRepository(Protocol):
    """Manual locks and freezes; each change is audited in the same transaction."""

    async def lock(self, lock: LockRecord, audit: Sequence[AuditEntry]) -> bool:
        """Lock service/environment, or update the reason of an existing lock (False)."""
        ...

    async def unlock(
        self, service: str, environment: str, audit: Sequence[AuditEntry]
    ) -> LockRecord | None:
        """Lift the lock; the lifted lock, or None when there was none (nothing audited)."""
        ...

    async def get_lock(self, service: str, environment: str) -> LockRecord | None: ...

    async def freeze(self, freeze: FreezeRecord, audit: Sequence[AuditEntry]) -> None: ...

    async def unfreeze(self, environment: str, audit: Sequence[AuditEntry]) -> int:
        """End the environment's manual freezes; how many were ended."""
        ...

    async def freezes(self, environment: str) -> list[FreezeRecord]: ...


class Directory(Protocol):
    """Who is in which user group (Slack user groups, cached)."""

    async def members(self, group_ids: Sequence[str]) -> dict[str, set[str]]: ...


class Urgency(Enum):
    """Who goes first when the edge's calls are rationed: rollbacks, then release steps, then
    reads for people and watchers. Reads may be answered from a moment-old copy."""

    ROLLBACK = "rollback"
    STEP = "step"
    READ = "read"


# Told, when a call has to wait for the edge, until when it keeps trying; and None once that
# call is over (answered or given up).
BusyListener = Callable[[datetime | None], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class EdgeCall:
    """How one call to the edge is made (the default: a release step, nobody told).
    ``fresh``: a read that must see what is live now, not a moment-old copy."""

    urgency: Urgency = Urgency.STEP
    on_busy: BusyListener | None = None
    fresh: bool = False


READ = EdgeCall(Urgency.READ)
READ_FRESH = EdgeCall(Urgency.READ, fresh=True)


class EdgeDeployer(Protocol):
    """Cloudflare Workers versions and deployments for one account. ``call`` says how urgent
    a call is (a release step when omitted)."""

    async def list_versions(self, script: str, call: EdgeCall | None = None) -> list[WorkerVersion]:
        """Uploaded versions, newest first."""
        ...

    async def get_version(self, script: str, version_id: str) -> WorkerVersion: ...

    async def deployable_versions(
        self, script: str, call: EdgeCall | None = None
    ) -> list[WorkerVersion]:
        """The versions Cloudflare can still deploy (``deployable=true``: the newest 100),
        newest first."""
        ...

    async def active_deployment(
        self, script: str, call: EdgeCall | None = None
    ) -> Deployment | None:
        """The deployment serving traffic now (the first of the list), or None."""
        ...

    async def list_deployments(self, script: str, call: EdgeCall | None = None) -> list[Deployment]:
        """Deployments, newest (the active one) first."""
        ...

    async def deploy(
        self,
        script: str,
        split: Sequence[VersionShare],
        message: str,
        force: bool = False,
        call: EdgeCall | None = None,
    ) -> Deployment:
        """Create a percentage deployment. Safe to call once per intent: on an unclear
        failure the adapter re-reads the active deployment before any retry."""
        ...

    async def d1_bookmark(self, database_id: str) -> str:
        """The D1 Time Travel bookmark for now."""
        ...

    async def d1_restore(self, database_id: str, bookmark: str) -> str:
        """Restore D1 to ``bookmark``; returns the bookmark before the restore (to undo)."""
        ...


class Notifier(Protocol):
    """Tells people what happened (Slack, in production). Failures are the notifier's to
    log and retry; they never undo a stored state change."""

    async def release_changed(self, release: Release) -> None:
        """Post the release card, or update it in place if it was posted before."""
        ...

    async def notify(self, notice: Notice) -> None:
        """Tell people ``notice`` (where it goes — thread, channel, DM — is the notifier's)."""
        ...

    async def audit_recorded(self, entries: Sequence[AuditEntry]) -> None:
        """The records (and their outbox rows) are stored: send what is owed now."""
        ...


class Prober(Protocol):
    async def health_probe(
        self, url: str, version_override: tuple[str, str] | None = None
    ) -> tuple[bool, int | None, str]:
        """GET ``url`` once: ``(ok, status, detail)``; ``version_override=(script, id)``."""
        ...

    async def version_probe(
        self, url: str, script: str, version_id: str, report: VersionReport
    ) -> ProbeAnswer:
        """GET ``url`` once with the version override for ``script`` → ``version_id``, and
        read which version answered where ``report`` says the Worker tells (None when it
        does not, or ``report`` names no place). Cloudflare applies the override only to a
        version in the active deployment; otherwise the split answers, without a word."""
        ...


class Analytics(Protocol):
    """Per-version traffic numbers for health gates."""

    async def version_metrics(
        self, script: str, since: datetime, until: datetime, call: EdgeCall | None = None
    ) -> dict[str, VersionMetrics]:
        """Requests and errors per version id of ``script`` in [since, until]."""
        ...


class MigrationSource(Protocol):
    """Where an environment's D1 migration files come from (wrangler's layout: numbered
    ``.sql`` files in ``migrations_dir``): a folder on the bot's host, or the repository at
    the version's commit."""

    async def migrations(self, release: Release) -> list[MigrationFile]:
        """Every migration file for ``release``'s service/environment, as of its version.
        Raises ``MigrationSourceError`` when the files cannot be read."""
        ...


class MigrationLinter(Protocol):
    """Reads migrations' SQL and flags what would break the version running now."""

    def lint_all(
        self, files: Sequence[MigrationFile], definitions: Sequence[str] = ()
    ) -> dict[str, list[Finding]]:
        """Findings per file name, the files read in the order they apply, from the schema
        the database has now (its ``CREATE TABLE`` statements, ``definitions``)."""
        ...


class D1Migrations(Protocol):
    """A D1 database's ``d1_migrations`` table (as wrangler keeps it) and its query API."""

    async def applied_migrations(
        self, database_id: str, call: EdgeCall | None = None
    ) -> list[AppliedMigration]:
        """The rows of ``d1_migrations`` by id; none when the table does not exist yet (it is
        not created by reading)."""
        ...

    async def apply_migration(self, database_id: str, migration: MigrationFile) -> None:
        """Run the file and record it in ``d1_migrations`` in one batch, as wrangler does: both
        or neither. Raises ``EdgeRejected`` with D1's message when a statement fails."""
        ...

    async def table_definitions(self, database_id: str, call: EdgeCall | None = None) -> list[str]:
        """The ``CREATE TABLE`` statements of the database's tables, as SQLite keeps them."""
        ...

    async def d1_query(self, database_id: str, sql: str) -> list[list[dict[str, Any]]]:
        """Run ``sql`` (one batch); the rows of each statement."""
        ...
