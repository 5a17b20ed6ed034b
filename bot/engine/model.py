"""Domain records: what a release, a step, a vote, an audit entry and a Worker version are.

Plain dataclasses; storage maps them to tables, Slack renders them, nobody else owns them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from bot.engine.states import State

REJECTED = "rejected"  # how the outcome of a rejected release begins


class Kind(StrEnum):
    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    RESTORE_DB = "restore_db"  # restores the D1 bookmark taken before another release


class Strategy(StrEnum):
    GRADUAL = "gradual"
    IMMEDIATE = "immediate"


class StepStatus(StrEnum):
    INTENDED = "intended"  # written before the Cloudflare call
    DEPLOYED = "deployed"  # Cloudflare confirmed the split
    PASSED = "passed"  # its gate passed
    FAILED = "failed"  # its deployment or gate failed


@dataclass(frozen=True, slots=True)
class VersionShare:
    version_id: str
    percentage: float


@dataclass(frozen=True, slots=True)
class VersionReport:
    """Where a Worker says which version answered a request: a response header, or a field
    of its JSON body (dotted, e.g. ``build.version_id``), typically the id of its
    version-metadata binding. Cloudflare itself does not say."""

    header: str | None = None
    field: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.header or self.field)


@dataclass(frozen=True, slots=True)
class ProbeAnswer:
    """One health probe: whether it passed, the HTTP status (None: no answer), what happened
    in words, and the version that answered when the Worker said so."""

    ok: bool
    status: int | None
    detail: str
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class Binding:
    """One binding of a version (``resources.bindings``): its name, its type
    (``kv_namespace``, ``secret_text``...) and the resource it names, when it names one (a
    namespace id, bucket, queue, class). A secret's value is never shown, only its name."""

    name: str
    type: str
    target: str | None = None


@dataclass(frozen=True, slots=True)
class VersionRuntime:
    """What the version detail says a version runs with (``resources``); the versions list
    does not carry it."""

    bindings: tuple[Binding, ...] = ()
    compatibility_date: str | None = None
    compatibility_flags: tuple[str, ...] = ()
    usage_model: str | None = None
    migration_tag: str | None = None  # the Durable Object migration it was uploaded with


@dataclass(frozen=True, slots=True)
class WorkerVersion:
    id: str
    number: int | None = None
    tag: str | None = None
    message: str | None = None
    author_email: str | None = None
    created_on: datetime | None = None
    source: str | None = None
    etag: str | None = None  # Cloudflare's content hash of the script (resources.script.etag)
    # the workers/triggered_by annotation: what made the version ("upload", "secret", ...)
    triggered_by: str | None = None
    runtime: VersionRuntime | None = None  # only from the version detail


@dataclass(frozen=True, slots=True)
class Deployment:
    id: str
    versions: tuple[VersionShare, ...]
    created_on: datetime | None = None
    author_email: str | None = None
    source: str | None = None
    message: str | None = None

    def share_of(self, version_id: str) -> float:
        return sum(v.percentage for v in self.versions if v.version_id == version_id)

    @property
    def stable_version_id(self) -> str | None:
        """The version alone at 100%, if the deployment is not a split."""
        if len(self.versions) == 1 and self.versions[0].percentage >= 100:
            return self.versions[0].version_id
        return None

    def same_split(self, split: tuple[VersionShare, ...]) -> bool:
        def norm(shares: tuple[VersionShare, ...]) -> set[tuple[str, float]]:
            return {(s.version_id, round(s.percentage, 3)) for s in shares}

        return norm(self.versions) == norm(split)


@dataclass(slots=True)
class Step:
    index: int
    percent: int
    status: StepStatus = StepStatus.INTENDED
    deployment_id: str | None = None
    intended_at: datetime | None = None
    deployed_at: datetime | None = None
    gate: dict[str, Any] | None = None


@dataclass(slots=True)
class Release:
    """One request to put ``version_id`` live on ``service``/``environment``.

    ``id`` is None until stored; people see ``key`` ("R-42").
    """

    service: str
    environment: str
    script: str
    version_id: str
    requested_by: str
    policy: str
    kind: Kind = Kind.DEPLOY
    strategy: Strategy = Strategy.IMMEDIATE
    plan: tuple[int, ...] = (100,)
    state: State = State.REQUESTED
    version_tag: str | None = None
    version_message: str | None = None
    stable_version_id: str | None = None
    stable_version_tag: str | None = None
    reason: str | None = None
    emergency: bool = False
    approvals_required: int = 0
    current_step: int = -1
    paused: bool = False
    channel: str | None = None
    message_ts: str | None = None
    d1_bookmark: str | None = None
    # A deploy's D1 migrations (``bot.engine.migrations.MigrationPlan.to_dict``): worked out
    # when it is requested, shown before approval, applied by the migration stage.
    migrations: dict[str, Any] | None = None
    outcome: str | None = None  # plain text: why it ended as it did
    ended_by: str | None = None  # the person who ended it (rejected, cancelled, rolled back)
    # where the version came from (bot.engine.sources.VersionSource.to_dict)
    source: dict[str, Any] | None = None
    # the pre-deploy checks as last read (bot.engine.checks.ChecksReport.to_dict)
    checks: dict[str, Any] | None = None
    # the environment's last known good when it was asked for (bot.engine.known_good.LastGood)
    last_good: dict[str, Any] | None = None
    # what ships: live version → candidate (bot.engine.diff.VersionDiff.to_dict), shown
    # before approval
    diff: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    expires_at: datetime | None = None
    id: int | None = None
    revision: int = 0
    steps: list[Step] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"R-{self.id}" if self.id is not None else "R-?"

    @property
    def target(self) -> str:
        return f"{self.service}/{self.environment}"

    @property
    def rejected(self) -> bool:
        """Ended by an approver's rejection: the machine's ``reject`` ends in CANCELLED, and
        the outcome it stores begins with "rejected"."""
        return self.state is State.CANCELLED and (self.outcome or "").startswith(REJECTED)

    def copy(self, **changes: Any) -> Release:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Vote:
    release_id: int
    version_id: str
    user_id: str
    approve: bool
    at: datetime
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One fact for the audit trail; storage chains and stores it in the same transaction.

    ``action`` is a verb phrase like ``"release.requested"`` or ``"step.deployed"``.
    """

    actor: str
    action: str
    at: datetime
    release_id: int | None = None
    release_key: str | None = None
    service: str | None = None
    environment: str | None = None
    before: str | None = None
    after: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VersionMetrics:
    """Invocations of one Worker version over a window (from Cloudflare analytics)."""

    version_id: str
    requests: int
    errors: int
    cpu_time_p50_us: float | None = None
    cpu_time_p99_us: float | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True, slots=True)
class LockRecord:
    """A manual lock: nothing deploys to service/environment until it is lifted."""

    service: str
    environment: str
    reason: str | None
    locked_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class FreezeRecord:
    """A freeze set with ``/release freeze``: no deploys to the environment until ``until``."""

    environment: str
    until: datetime
    reason: str | None
    by: str
    at: datetime


# The kinds of timer the engine schedules.
ADVANCE = "advance"  # drive a release on (a bake ended, a step is due)
EXPIRE = "expire"  # an approval window closes
SUMMARY = "summary"  # post a release's summary
CHECKS = "checks"  # read a release's pending pre-deploy checks again


@dataclass(frozen=True, slots=True)
class Timer:
    """Work due at a time (a bake ending, an approval expiring), stored and leased so that
    exactly one replica runs it and another picks it up if that one dies."""

    id: int
    kind: str
    due_at: datetime
    release_id: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    fired_at: datetime | None = None
