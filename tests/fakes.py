"""In-memory fakes, one per engine port, for fast engine tests.

They follow the port contracts (revision checks, one active release per target, audit entries
stored with the change) so engine tests exercise the same rules the SQL repository enforces.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.engine.errors import ConcurrentUpdate, EdgeRejected, EdgeUnavailable, Refused
from bot.engine.migrations import AppliedMigration, MigrationFile
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
from bot.engine.notices import Notice
from bot.engine.ports import EdgeCall
from bot.engine.states import State
from bot.slack.render import render


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class FakeReleaseRepository:
    def __init__(self) -> None:
        self.releases: dict[int, Release] = {}
        self.audit: list[AuditEntry] = []
        self._ids = itertools.count(1)

    def _holder(self, release: Release) -> Release | None:
        for other in self.releases.values():
            if (
                other.id != release.id
                and other.state.holds_slot
                and (other.service, other.environment) == (release.service, release.environment)
            ):
                return other
        return None

    def _stamp(self, entries: Sequence[AuditEntry], release: Release) -> None:
        for e in entries:
            self.audit.append(
                e if e.release_id else replace(e, release_id=release.id, release_key=release.key)
            )

    async def create(self, release: Release, audit: Sequence[AuditEntry]) -> Release:
        if release.state.holds_slot and (holder := self._holder(release)):
            raise Refused(f"{release.target} already has an active release {holder.key}")
        stored = copy.deepcopy(release)
        stored.id = next(self._ids)
        stored.revision = 1
        self.releases[stored.id] = stored
        self._stamp(audit, stored)
        return copy.deepcopy(stored)

    async def save(
        self, release: Release, audit: Sequence[AuditEntry], steps: Sequence[Step] = ()
    ) -> Release:
        assert release.id is not None
        current = self.releases[release.id]
        if current.revision != release.revision:
            raise ConcurrentUpdate(release.key)
        if release.state.holds_slot and (holder := self._holder(release)):
            raise Refused(f"{release.target} already has an active release {holder.key}")
        stored = copy.deepcopy(release)
        stored.revision += 1
        # Where the card lives is set only by set_card (as in the SQL repository).
        stored.channel, stored.message_ts = current.channel, current.message_ts
        by_index = {s.index: s for s in stored.steps}
        for step in steps:
            by_index[step.index] = copy.deepcopy(step)
        stored.steps = [by_index[i] for i in sorted(by_index)]
        self.releases[stored.id] = stored
        self._stamp(audit, stored)
        return copy.deepcopy(stored)

    async def get(self, release_id: int) -> Release | None:
        found = self.releases.get(release_id)
        return copy.deepcopy(found) if found else None

    async def set_card(self, release_id: int, channel: str, ts: str) -> None:
        self.releases[release_id].channel = channel
        self.releases[release_id].message_ts = ts

    async def unfinished(self) -> list[Release]:
        return [copy.deepcopy(r) for r in self.releases.values() if not r.state.is_terminal]

    async def queued(self, service: str, environment: str) -> list[Release]:
        return [
            copy.deepcopy(r)
            for r in sorted(self.releases.values(), key=lambda r: r.id or 0)
            if r.state is State.APPROVED and (r.service, r.environment) == (service, environment)
        ]

    async def succeeded_versions_with_tag(
        self, service: str, environment: str, tag: str
    ) -> list[str]:
        return sorted(
            {
                r.version_id
                for r in self.releases.values()
                if r.state is State.SUCCEEDED
                and (r.service, r.environment, r.version_tag) == (service, environment, tag)
            }
        )

    async def active_for(self, service: str, environment: str) -> Release | None:
        for r in self.releases.values():
            if r.state.holds_slot and (r.service, r.environment) == (service, environment):
                return copy.deepcopy(r)
        return None

    async def history(
        self, service: str | None, environment: str | None, limit: int, before_id: int | None = None
    ) -> list[Release]:
        rows = [
            r
            for r in sorted(self.releases.values(), key=lambda r: r.id or 0, reverse=True)
            if (service is None or r.service == service)
            and (environment is None or r.environment == environment)
            and (before_id is None or (r.id or 0) < before_id)
        ]
        return [copy.deepcopy(r) for r in rows[:limit]]

    async def audit_for(self, release_id: int) -> list[AuditEntry]:
        return [e for e in self.audit if e.release_id == release_id]

    async def append_audit(self, audit: Sequence[AuditEntry]) -> None:
        self.audit.extend(audit)


class FakeEdge:
    """A fake Cloudflare account: versions and deployments per script, in memory."""

    def __init__(self) -> None:
        self.versions: dict[str, list[WorkerVersion]] = {}
        self.deployments: dict[str, list[Deployment]] = {}
        self.deploy_calls: list[tuple[str, tuple[VersionShare, ...]]] = []
        # (method, how it was called) of every call that says how urgent it is
        self.calls: list[tuple[str, EdgeCall | None]] = []
        self.fail_deploys: list[Exception] = []
        self.metrics: dict[str, VersionMetrics] = {}
        self.probes: list[tuple[str, tuple[str, str] | None]] = []
        self.probe_ok: list[bool] = []
        self.reports_version = True  # whether the fake Worker says which version answered
        self._ids = itertools.count(1)

    def add_version(self, script: str, tag: str | None = None) -> str:
        n = next(self._ids)
        vid = f"{n:08x}-0000-4000-8000-{n:012x}"
        self.versions.setdefault(script, []).insert(
            0, WorkerVersion(id=vid, number=n, tag=tag, message=f"build {n}")
        )
        return vid

    def put_live(self, script: str, *shares: VersionShare) -> Deployment:
        dep = Deployment(id=f"dep-{next(self._ids)}", versions=tuple(shares))
        self.deployments.setdefault(script, []).insert(0, dep)
        return dep

    async def list_versions(self, script: str, call: EdgeCall | None = None) -> list[WorkerVersion]:
        self.calls.append(("list_versions", call))
        return list(self.versions.get(script, []))

    async def deployable_versions(
        self, script: str, call: EdgeCall | None = None
    ) -> list[WorkerVersion]:
        self.calls.append(("deployable_versions", call))
        return list(self.versions.get(script, []))[:100]

    async def get_version(self, script: str, version_id: str) -> WorkerVersion:
        for v in self.versions.get(script, []):
            if v.id == version_id:
                return v
        raise EdgeRejected("version not found", codes=[10007], status=404)

    async def active_deployment(
        self, script: str, call: EdgeCall | None = None
    ) -> Deployment | None:
        self.calls.append(("active_deployment", call))
        deps = self.deployments.get(script)
        return deps[0] if deps else None

    async def list_deployments(self, script: str, call: EdgeCall | None = None) -> list[Deployment]:
        self.calls.append(("list_deployments", call))
        return list(self.deployments.get(script, []))

    async def deploy(
        self,
        script: str,
        split: Sequence[VersionShare],
        message: str,
        force: bool = False,
        call: EdgeCall | None = None,
    ) -> Deployment:
        self.calls.append(("deploy", call))
        self.deploy_calls.append((script, tuple(split)))
        if self.fail_deploys:
            raise self.fail_deploys.pop(0)
        return self.put_live(script, *split)

    async def d1_bookmark(self, database_id: str) -> str:
        return f"bookmark-{database_id}-{next(self._ids)}"

    async def d1_restore(self, database_id: str, bookmark: str) -> str:
        return f"previous-{next(self._ids)}"

    async def health_probe(
        self,
        url: str,
        version_override: tuple[str, str] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - mirrors the adapter's signature
    ) -> tuple[bool, int | None, str]:
        self.probes.append((url, version_override))
        ok = self.probe_ok.pop(0) if self.probe_ok else True
        return ok, 200 if ok else 500, f"{url} answered {200 if ok else 500}"

    async def version_probe(
        self, url: str, script: str, version_id: str, report: VersionReport
    ) -> ProbeAnswer:
        """As Cloudflare routes it: the override reaches ``version_id`` only when it is in the
        live deployment, else the largest share answers; the answer names the version when
        ``report`` says where to read it and ``reports_version`` is on."""
        ok, status, detail = await self.health_probe(url, (script, version_id))
        active = await self.active_deployment(script)
        answered = None
        if active is not None and active.versions:
            shares = {s.version_id for s in active.versions}
            answered = version_id if version_id in shares else stable_share(active)
        told = answered if report.configured and self.reports_version else None
        return ProbeAnswer(ok, status, detail, told)

    async def version_metrics(
        self, script: str, since: datetime, until: datetime, call: EdgeCall | None = None
    ) -> dict[str, VersionMetrics]:
        return dict(self.metrics)


def stable_share(deployment: Deployment) -> str:
    """The version with the largest share (who answers a request not pinned elsewhere)."""
    return max(deployment.versions, key=lambda s: s.percentage).version_id


class RecordingNotifier:
    def __init__(self) -> None:
        self.cards: list[Release] = []
        self.replies: list[tuple[str, str]] = []
        self.audit: list[AuditEntry] = []
        self.announcements: list[str] = []
        self.dms: list[tuple[str, str]] = []
        self.notices: list[Notice] = []
        self.card_notes: list[str] = []

    async def notify(self, notice: Notice) -> None:
        self.notices.append(notice)
        for post in render(notice):
            if post.where == "card":
                self.card_notes.append(post.text)
            elif post.where == "thread" and post.release is not None:
                await self.thread_reply(post.release, post.text)
            elif post.where == "direct" and post.user_id:
                await self.direct(post.user_id, post.text)
            else:
                await self.announce(post.text)

    async def announce(self, text: str) -> None:
        self.announcements.append(text)

    async def direct(self, user_id: str, text: str) -> None:
        self.dms.append((user_id, text))

    async def release_changed(self, release: Release) -> None:
        self.cards.append(copy.deepcopy(release))

    async def thread_reply(self, release: Release, text: str) -> None:
        self.replies.append((release.key, text))

    async def audit_recorded(self, entries: Sequence[AuditEntry]) -> None:
        self.audit.extend(entries)


class FakeVotes:
    def __init__(self, repo: FakeReleaseRepository) -> None:
        self.repo = repo
        self.rows: list[Vote] = []

    async def add_vote(self, vote: Vote, audit: Sequence[AuditEntry] = ()) -> bool:
        if any(v.release_id == vote.release_id and v.user_id == vote.user_id for v in self.rows):
            return False
        self.rows.append(vote)
        self.repo.audit.extend(audit)
        return True

    async def votes(self, release_id: int) -> list[Vote]:
        return [v for v in self.rows if v.release_id == release_id]

    async def votes_many(self, release_ids: Sequence[int]) -> dict[int, list[Vote]]:
        return {rid: await self.votes(rid) for rid in release_ids}


class FakeTimers:
    def __init__(self) -> None:
        self.rows: dict[int, Timer] = {}
        self._ids = itertools.count(1)

    async def schedule(self, kind, due_at, release_id=None, payload=None) -> int:  # type: ignore[no-untyped-def]
        tid = next(self._ids)
        self.rows[tid] = Timer(tid, kind, due_at, release_id, payload or {})
        return tid

    def _free(self, t: Timer, now: datetime, owner: str | None = None) -> bool:
        return t.fired_at is None and (
            t.claimed_by is None or t.claimed_until < now or t.claimed_by == owner  # type: ignore[operator]
        )

    async def claim_due(self, now, owner, lease, limit=50) -> list[Timer]:  # type: ignore[no-untyped-def]
        due = sorted(
            (t for t in self.rows.values() if t.due_at <= now and self._free(t, now)),
            key=lambda t: (t.due_at, t.id),
        )[:limit]
        for t in due:
            self.rows[t.id] = replace(t, claimed_by=owner, claimed_until=now + lease)
        return [self.rows[t.id] for t in due]

    async def claim(self, timer_id, now, owner, lease) -> Timer | None:  # type: ignore[no-untyped-def]
        t = self.rows.get(timer_id)
        if t is None or not self._free(t, now, owner):
            return None
        self.rows[timer_id] = replace(t, claimed_by=owner, claimed_until=now + lease)
        return self.rows[timer_id]

    async def extend(self, timer_id, owner, until) -> bool:  # type: ignore[no-untyped-def]
        t = self.rows.get(timer_id)
        if t is None or t.claimed_by != owner or t.fired_at is not None:
            return False
        self.rows[timer_id] = replace(t, claimed_until=until)
        return True

    async def complete(self, timer_id, at=None) -> None:  # type: ignore[no-untyped-def]
        t = self.rows[timer_id]
        self.rows[timer_id] = replace(t, fired_at=at or datetime.now(UTC))

    async def cancel_for(self, release_id, kind=None) -> int:  # type: ignore[no-untyped-def]
        gone = [
            t.id
            for t in self.rows.values()
            if t.release_id == release_id and t.fired_at is None and kind in (None, t.kind)
        ]
        for tid in gone:
            del self.rows[tid]
        return len(gone)

    async def pending_kind(self, kind: str) -> list[Timer]:
        return [t for t in self.rows.values() if t.kind == kind and t.fired_at is None]

    async def pending(self, release_id, kind=None) -> list[Timer]:  # type: ignore[no-untyped-def]
        return [
            t
            for t in self.rows.values()
            if t.release_id == release_id and t.fired_at is None and kind in (None, t.kind)
        ]


class FakeRails:
    def __init__(self, repo: FakeReleaseRepository) -> None:
        self.repo = repo
        self.locks: dict[tuple[str, str], LockRecord] = {}
        self.frozen: list[FreezeRecord] = []

    async def lock(self, lock: LockRecord, audit: Sequence[AuditEntry]) -> bool:
        created = (lock.service, lock.environment) not in self.locks
        self.locks[(lock.service, lock.environment)] = lock
        self.repo.audit.extend(audit)
        return created

    async def unlock(self, service, environment, audit) -> LockRecord | None:  # type: ignore[no-untyped-def]
        lifted = self.locks.pop((service, environment), None)
        if lifted is not None:
            self.repo.audit.extend(audit)
        return lifted

    async def get_lock(self, service: str, environment: str) -> LockRecord | None:
        return self.locks.get((service, environment))

    async def freeze(self, freeze: FreezeRecord, audit: Sequence[AuditEntry]) -> None:
        self.frozen.append(freeze)
        self.repo.audit.extend(audit)

    async def unfreeze(self, environment: str, audit: Sequence[AuditEntry]) -> int:
        before = len(self.frozen)
        self.frozen = [f for f in self.frozen if f.environment != environment]
        if before != len(self.frozen):
            self.repo.audit.extend(audit)
        return before - len(self.frozen)

    async def freezes(self, environment: str) -> list[FreezeRecord]:
        return [f for f in self.frozen if f.environment == environment]


class FakeDirectory:
    def __init__(self, groups: dict[str, set[str]] | None = None) -> None:
        self.groups = groups or {}

    async def members(self, group_ids: Sequence[str]) -> dict[str, set[str]]:
        return {g: set(self.groups.get(g, set())) for g in group_ids}


class SimD1:
    """D1 for engine tests: the simulator's SQLite databases behind the migration port, with
    the same ``d1_migrations`` queries the Cloudflare adapter sends."""

    def __init__(self, state: Any) -> None:
        from bot.cloudflare.sim_state import SimulatorState

        self.state: SimulatorState = state
        self.applies: list[str] = []
        self.lose_next_answer = False  # the batch runs, but its answer is lost
        self.die_after_next_batch = False  # the batch runs, then the process dies (kill -9)
        self.drop_next_batch = False  # D1 never gets the batch, and the call times out
        self.read_back_fails = False  # ...and the read of d1_migrations after it times out too
        self.reads_fail = 0  # how many reads of d1_migrations time out next

    def _query(self, database_id: str, sql: str) -> list[list[dict[str, Any]]]:
        from bot.cloudflare.sim_d1 import QueryFailed

        try:
            results = self.state.d1_query(database_id, sql)
        except QueryFailed as exc:
            raise EdgeRejected(f"D1 refused the query: {exc}", codes=[7500], status=400) from None
        return [r["results"] for r in results]

    async def d1_query(self, database_id: str, sql: str) -> list[list[dict[str, Any]]]:
        return self._query(database_id, sql)

    async def applied_migrations(
        self, database_id: str, call: EdgeCall | None = None
    ) -> list[AppliedMigration]:
        from bot.cloudflare import d1_migrations

        if self.reads_fail:
            self.reads_fail -= 1
            raise EdgeUnavailable("Cloudflare timed out 3 times while reading d1_migrations")
        (exists,) = self._query(database_id, d1_migrations.TABLE_EXISTS)
        if not exists:
            return []
        (rows,) = self._query(database_id, d1_migrations.LIST_APPLIED)
        return d1_migrations.applied_rows(rows)

    async def table_definitions(self, database_id: str, call: EdgeCall | None = None) -> list[str]:
        from bot.cloudflare import d1_migrations

        (rows,) = self._query(database_id, d1_migrations.TABLE_DEFINITIONS)
        return [r["sql"] for r in rows]

    async def apply_migration(self, database_id: str, migration: MigrationFile) -> None:
        from bot.cloudflare import d1_migrations

        self.applies.append(migration.name)
        if self.drop_next_batch:
            self.drop_next_batch = False
            self.reads_fail += 1 if self.read_back_fails else 0
            raise EdgeUnavailable("Cloudflare timed out 3 times while querying D1")
        self._query(database_id, d1_migrations.CREATE_TABLE)
        self._query(database_id, d1_migrations.apply_batch(migration))
        if self.die_after_next_batch:
            self.die_after_next_batch = False
            raise ProcessKilled
        if self.lose_next_answer:
            self.lose_next_answer = False
            raise EdgeUnavailable("Cloudflare timed out 3 times while querying D1")


class ProcessKilled(BaseException):
    """Stands for kill -9: nothing after it runs, no handler sees it."""
