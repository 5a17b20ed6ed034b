"""Typed commands: one frozen dataclass per ``/release`` subcommand.

Values are already checked and normalised by the parser: names are lower-case, release ids
read ``R-<n>``, integers are in range. Whether a service, environment or version *exists* is
not known here; the engine decides that.

>>> Approve("R-42").release_number
42
>>> Deploy("tax-api", "v1.2").env is None
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Literal

Strategy = Literal["gradual", "immediate"]

# "R-42", "r-42", "R42", "42", "#R-42" and "#42" all name release 42. Nine digits keep the
# number far below any database integer limit.
_RELEASE_ID = re.compile(r"#?(?:r-?)?0*([0-9]{1,9})", re.IGNORECASE)


def normalize_release_id(text: str) -> str | None:
    """``R-<n>`` for anything a person types to name a release, or None if it is not one.

    >>> normalize_release_id("#r-042")
    'R-42'
    >>> normalize_release_id("R-0") is None
    True
    """
    match = _RELEASE_ID.fullmatch(text.strip())
    if match is None or int(match.group(1)) == 0:
        return None
    return f"R-{int(match.group(1))}"


def release_number(release_id: str) -> int:
    """The integer in a normalised release id: ``release_number("R-42") == 42``."""
    return int(release_id.removeprefix("R-"))


class _ReleaseRef:
    """Mixin for commands that name one release by ``release_id``."""

    __slots__ = ()
    release_id: str

    @property
    def release_number(self) -> int:
        """The release id as an integer (``R-42`` -> 42)."""
        return release_number(self.release_id)


@dataclass(frozen=True, slots=True)
class Deploy:
    """Deploy ``version`` of ``service``; ``emergency`` breaks a freeze and needs a reason."""

    subcommand: ClassVar[str] = "deploy"
    service: str
    version: str
    env: str | None = None
    reason: str | None = None
    strategy: Strategy | None = None
    emergency: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """Dry run of a deploy: shows what would happen and changes nothing."""

    subcommand: ClassVar[str] = "plan"
    service: str
    version: str
    env: str | None = None


@dataclass(frozen=True, slots=True)
class Rollback:
    """Return ``service`` in ``env`` to ``to_version`` (None: the previous stable version)."""

    subcommand: ClassVar[str] = "rollback"
    service: str
    env: str | None = None
    to_version: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Status:
    """Live state; without a service, every service."""

    subcommand: ClassVar[str] = "status"
    service: str | None = None
    env: str | None = None


@dataclass(frozen=True, slots=True)
class History:
    """Past releases of ``service``, newest first; ``limit`` is 1..100 or None (default)."""

    subcommand: ClassVar[str] = "history"
    service: str
    env: str | None = None
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class Versions:
    """Uploaded versions of ``service``."""

    subcommand: ClassVar[str] = "versions"
    service: str
    env: str | None = None


@dataclass(frozen=True, slots=True)
class Migrations:
    """Applied and pending D1 migrations of ``service``."""

    subcommand: ClassVar[str] = "migrations"
    service: str
    env: str | None = None


@dataclass(frozen=True, slots=True)
class Health:
    """Error rates and health checks of ``service``."""

    subcommand: ClassVar[str] = "health"
    service: str
    env: str | None = None


@dataclass(frozen=True, slots=True)
class Approve(_ReleaseRef):
    subcommand: ClassVar[str] = "approve"
    release_id: str


@dataclass(frozen=True, slots=True)
class Reject(_ReleaseRef):
    subcommand: ClassVar[str] = "reject"
    release_id: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Cancel(_ReleaseRef):
    subcommand: ClassVar[str] = "cancel"
    release_id: str


@dataclass(frozen=True, slots=True)
class Promote(_ReleaseRef):
    subcommand: ClassVar[str] = "promote"
    release_id: str


@dataclass(frozen=True, slots=True)
class Pause(_ReleaseRef):
    subcommand: ClassVar[str] = "pause"
    release_id: str


@dataclass(frozen=True, slots=True)
class Resume(_ReleaseRef):
    subcommand: ClassVar[str] = "resume"
    release_id: str


@dataclass(frozen=True, slots=True)
class Lock:
    subcommand: ClassVar[str] = "lock"
    service: str
    env: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Unlock:
    subcommand: ClassVar[str] = "unlock"
    service: str
    env: str


@dataclass(frozen=True, slots=True)
class Freeze:
    """Freeze ``env`` until ``until``: the raw ``<when>`` text; read it with ``parse_when``."""

    subcommand: ClassVar[str] = "freeze"
    env: str
    until: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Unfreeze:
    subcommand: ClassVar[str] = "unfreeze"
    env: str


@dataclass(frozen=True, slots=True)
class RestoreDb(_ReleaseRef):
    subcommand: ClassVar[str] = "restore-db"
    release_id: str


@dataclass(frozen=True, slots=True)
class Stats:
    """Delivery metrics; ``days`` is 1..365 or None (the default window)."""

    subcommand: ClassVar[str] = "stats"
    service: str | None = None
    days: int | None = None


@dataclass(frozen=True, slots=True)
class Audit:
    """Audit records; ``since`` is the raw ``<when>`` text; read it with ``parse_since``."""

    subcommand: ClassVar[str] = "audit"
    service: str | None = None
    since: str | None = None


@dataclass(frozen=True, slots=True)
class Help:
    """Help overview (``topic`` None) or one subcommand's help (``topic`` is its name)."""

    subcommand: ClassVar[str] = "help"
    topic: str | None = None


Command = (
    Deploy
    | Plan
    | Rollback
    | Status
    | History
    | Versions
    | Migrations
    | Health
    | Approve
    | Reject
    | Cancel
    | Promote
    | Pause
    | Resume
    | Lock
    | Unlock
    | Freeze
    | Unfreeze
    | RestoreDb
    | Stats
    | Audit
    | Help
)
