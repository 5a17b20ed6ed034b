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

from bot.engine.errors import ConcurrentUpdate, EdgeRejected, Refused
from bot.engine.model import (
    AuditEntry,
    Deployment,
    Release,
    Step,
    VersionMetrics,
    VersionShare,
    WorkerVersion,
)


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
                and other.state.is_active
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
        if release.state.is_active and (holder := self._holder(release)):
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
        if release.state.is_active and (holder := self._holder(release)):
            raise Refused(f"{release.target} already has an active release {holder.key}")
        stored = copy.deepcopy(release)
        stored.revision += 1
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

    async def active_for(self, service: str, environment: str) -> Release | None:
        for r in self.releases.values():
            if r.state.is_active and (r.service, r.environment) == (service, environment):
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
        self.fail_deploys: list[Exception] = []
        self.metrics: dict[str, VersionMetrics] = {}
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

    async def list_versions(self, script: str) -> list[WorkerVersion]:
        return list(self.versions.get(script, []))

    async def get_version(self, script: str, version_id: str) -> WorkerVersion:
        for v in self.versions.get(script, []):
            if v.id == version_id:
                return v
        raise EdgeRejected("version not found", codes=[10007], status=404)

    async def active_deployment(self, script: str) -> Deployment | None:
        deps = self.deployments.get(script)
        return deps[0] if deps else None

    async def list_deployments(self, script: str) -> list[Deployment]:
        return list(self.deployments.get(script, []))

    async def deploy(
        self, script: str, split: Sequence[VersionShare], message: str, force: bool = False
    ) -> Deployment:
        self.deploy_calls.append((script, tuple(split)))
        if self.fail_deploys:
            raise self.fail_deploys.pop(0)
        return self.put_live(script, *split)

    async def d1_bookmark(self, database_id: str) -> str:
        return f"bookmark-{database_id}-{next(self._ids)}"

    async def d1_restore(self, database_id: str, bookmark: str) -> str:
        return f"previous-{next(self._ids)}"

    async def version_metrics(
        self, script: str, since: datetime, until: datetime
    ) -> dict[str, VersionMetrics]:
        return dict(self.metrics)


class RecordingNotifier:
    def __init__(self) -> None:
        self.cards: list[Release] = []
        self.replies: list[tuple[str, str]] = []
        self.audit: list[AuditEntry] = []

    async def release_changed(self, release: Release) -> None:
        self.cards.append(copy.deepcopy(release))

    async def thread_reply(self, release: Release, text: str) -> None:
        self.replies.append((release.key, text))

    async def audit_recorded(self, entries: Sequence[AuditEntry]) -> None:
        self.audit.extend(entries)
