"""What the engine tells people, as typed records: what happened, to which release, with which
numbers. Plain data only; ``bot.slack.render`` turns each into Slack text (escaped, with
mentions), in one place.

The engine hands a notice to its :class:`~bot.engine.ports.Notifier` with ``notify``; the
notifier decides where it goes (the card's thread, the release channel, a direct message).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.engine.drift import Drift
from bot.engine.model import AuditEntry, Release, VersionMetrics
from bot.engine.rollout import GateVerdict
from bot.engine.stats import Stats
from bot.engine.words import Words

# -- in the card's thread ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApprovalRequested:
    release: Release
    approvers: tuple[str, ...]
    command: str


@dataclass(frozen=True, slots=True)
class VoteCounted:
    release: Release
    voter: str
    given: int
    required: int


@dataclass(frozen=True, slots=True)
class Rejected:
    release: Release
    by: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class Cancelled:
    release: Release
    by: str


@dataclass(frozen=True, slots=True)
class Expired:
    release: Release


@dataclass(frozen=True, slots=True)
class Steered:
    """A person paused, resumed or promoted (ended the bake of ``step_percent``)."""

    release: Release
    by: str
    verb: str
    step_percent: int | None = None


@dataclass(frozen=True, slots=True)
class RollingBack:
    release: Release
    by: str


@dataclass(frozen=True, slots=True)
class GateReport:
    release: Release
    step_percent: int
    verdict: GateVerdict


@dataclass(frozen=True, slots=True)
class StoppedBeforeTraffic:
    release: Release
    why: str


@dataclass(frozen=True, slots=True)
class MigrationsStopped:
    """The migration stage stopped the release before any traffic moved: a file failed
    (``file``), or a check after the migrations did. ``applied``: the files that did apply
    (a restore of the bookmark taken before the release would undo them)."""

    release: Release
    why: str
    file: str | None
    applied: tuple[str, ...]
    command: str


@dataclass(frozen=True, slots=True)
class Failed:
    release: Release
    why: str


@dataclass(frozen=True, slots=True)
class RolledBack:
    release: Release
    why: str
    automatic: bool
    people: tuple[str, ...]
    command: str
    timeline: tuple[AuditEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class D1Restored:
    release: Release
    bookmark: str
    previous: str


@dataclass(frozen=True, slots=True)
class HealthSummary:
    release: Release
    minutes: int
    metrics: VersionMetrics | None


@dataclass(frozen=True, slots=True)
class Resumed:
    """The bot restarted and picks the release up again."""

    release: Release


@dataclass(frozen=True, slots=True)
class DriftPaused:
    """The live split changed behind the release's back: it stopped changing traffic."""

    release: Release
    drift: Drift
    labels: dict[str, str]
    command: str


@dataclass(frozen=True, slots=True)
class Waiting:
    """An approved release cannot start yet: a lock or another release holds the target."""

    release: Release
    locked_by: str | None
    lock_reason: str | None
    holder: str | None
    place: int


@dataclass(frozen=True, slots=True)
class StartsNow:
    """The release ahead (``after``) left the environment: the next one waiting starts."""

    release: Release
    after: str


@dataclass(frozen=True, slots=True)
class EdgeBusy:
    """Cloudflare is busy (rate-limited or failing): the release's call keeps trying until
    ``until``, then the release fails safe. Shown on the card while it lasts; ``until`` None:
    that call is over."""

    release: Release
    until: datetime | None


@dataclass(frozen=True, slots=True)
class SourceBusy:
    """GitHub asked the release's checks to wait (a rate limit) or is failing: they are read
    again at ``until``. ``until`` None: that wait is over."""

    release: Release
    until: datetime | None


@dataclass(frozen=True, slots=True)
class SmokeUnconfirmed:
    release: Release
    detail: str


# -- in the release channel --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RollbackRequested:
    service: str
    environment: str
    by: str
    version_id: str
    tag: str | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class LockChanged:
    service: str
    environment: str
    by: str
    locked: bool  # False: released
    reason: str | None = None
    updated: bool = False  # an existing lock's reason changed
    set_by: str | None = None  # who had set the lock that was released
    starts: str | None = None  # the release that starts now the lock is gone


@dataclass(frozen=True, slots=True)
class FreezeChanged:
    environment: str
    by: str
    frozen: bool
    until: datetime | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class DriftFound:
    drift: Drift
    labels: dict[str, str]
    command: str


@dataclass(frozen=True, slots=True)
class DigestRow:
    service: str
    environment: str
    shares: tuple[tuple[str, str | None, float], ...]  # (version id, tag, percentage)
    requests: int | None = None
    error_rate: float | None = None
    analytics_error: str | None = None
    deploys: int = 0
    rollbacks: int = 0
    unreadable: str | None = None  # the live split could not be read


@dataclass(frozen=True, slots=True)
class Digest:
    policy: str
    since: datetime
    rows: tuple[DigestRow, ...]
    stats: Stats


# -- to one person -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequesterUpdate:
    """A direct message to the requester: ``action`` is the audit action that happened."""

    release: Release
    action: str
    channel: str


# -- a refusal shown privately (also audited) --------------------------------------------


@dataclass(frozen=True, slots=True)
class Refusal:
    actor: str
    words: Words


Notice = (
    ApprovalRequested
    | VoteCounted
    | Rejected
    | Cancelled
    | Expired
    | Steered
    | RollingBack
    | GateReport
    | StoppedBeforeTraffic
    | MigrationsStopped
    | Failed
    | RolledBack
    | D1Restored
    | HealthSummary
    | Resumed
    | DriftPaused
    | Waiting
    | StartsNow
    | EdgeBusy
    | SourceBusy
    | SmokeUnconfirmed
    | RollbackRequested
    | LockChanged
    | FreezeChanged
    | DriftFound
    | Digest
    | RequesterUpdate
)


@dataclass(slots=True)
class NoticeLog:
    """Notices in the order given (a test's notifier, or a dry run's)."""

    notices: list[Notice] = field(default_factory=list)

    def of(self, kind: type) -> Sequence[Notice]:
        return [n for n in self.notices if isinstance(n, kind)]
