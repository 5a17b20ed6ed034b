"""Where a version's code came from, as the code host (GitHub) reports it: checks, statuses,
pull requests, reviews, comparisons and files. Plain data, and the ``CodeHost`` port.

    runs = await host.check_runs("battleborn/tax-api", "1a2b3c4d...")
    [CheckResult(name="ci", state=CheckState.SUCCESS, url="https://...")]
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class CheckState(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    PENDING = "pending"


# A check run's conclusion, or a commit status's state, as one of the three.
_CONCLUSIONS = {
    "success": CheckState.SUCCESS,
    "neutral": CheckState.FAILURE,  # not success: a required check must pass
    "skipped": CheckState.FAILURE,
    "failure": CheckState.FAILURE,
    "cancelled": CheckState.FAILURE,
    "timed_out": CheckState.FAILURE,
    "action_required": CheckState.FAILURE,
    "stale": CheckState.FAILURE,
    "error": CheckState.FAILURE,  # a commit status
    "pending": CheckState.PENDING,
}


def check_state(status: str, conclusion: str | None) -> CheckState:
    """A check run's ``status``/``conclusion``, or a commit status's ``state`` (as
    ``status="completed"``, ``conclusion=state``), as success, failure or pending."""
    if status != "completed":
        return CheckState.PENDING
    return _CONCLUSIONS.get(conclusion or "", CheckState.FAILURE)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check run or commit status of a commit. ``detail`` is GitHub's own word
    (``in_progress``, ``failure``, ``timed_out``...)."""

    name: str
    state: CheckState
    url: str | None = None
    detail: str = ""
    kind: str = "check_run"  # or "status"


@dataclass(frozen=True, slots=True)
class PullRequest:
    number: int
    url: str
    title: str
    author: str | None  # the GitHub login
    merged: bool = False


@dataclass(frozen=True, slots=True)
class Review:
    reviewer: str | None
    state: str  # APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED, PENDING
    commit_id: str | None = None
    submitted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CommitSummary:
    sha: str
    title: str  # the message's first line
    author: str | None  # login when GitHub knows the person, else the git author's name
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Comparison:
    """``base...head``: ``status`` is ahead, behind, identical or diverged; ``commits`` are
    those ``head`` has that ``base`` lacks, oldest first (the newest of them when there are
    more than a page or two: ``total_commits`` counts them all)."""

    status: str
    ahead_by: int
    behind_by: int
    total_commits: int
    commits: tuple[CommitSummary, ...] = ()
    url: str | None = None


@dataclass(frozen=True, slots=True)
class RepoFile:
    path: str
    sha: str
    content: bytes


@dataclass(frozen=True, slots=True)
class RepoEntry:
    """One entry of a folder listing."""

    path: str
    name: str
    kind: str  # file, dir, symlink, submodule
    sha: str
    url: str | None = None  # where a person reads it on GitHub


@dataclass(frozen=True, slots=True)
class VersionBuild:
    """The Workers Build that made a version (Cloudflare's Builds API): ``outcome`` is
    success, fail, skipped, cancelled or terminated, None while it runs."""

    version_id: str
    commit_sha: str | None
    branch: str | None
    repository: str | None  # owner/name
    outcome: str | None
    pull_request_url: str | None = None
    author: str | None = None
    commit_message: str | None = None


class BuildsReader(Protocol):
    """Cloudflare's Workers Builds: which build made each version."""

    async def version_builds(self, version_ids: Sequence[str]) -> dict[str, VersionBuild]:
        """The builds of those versions that Workers Builds made; others are absent."""
        ...


# Told until when a call keeps retrying (a rate limit, GitHub down), and None once it is over.
SourceBusyListener = Callable[[datetime | None], Awaitable[None]]


@dataclass(slots=True)
class Allowance:
    """Seconds several calls together may still spend (one read of a release's checks: its
    check runs, statuses, pull requests, reviews and their pages); the client takes off
    what each call took."""

    seconds: float


@dataclass(frozen=True, slots=True)
class SourceCall:
    """How one call to the code host is made: how long it may keep retrying (seconds; None:
    the client's default), who hears that it waits, and (``shared``) the allowance it draws
    on with the other calls of the same read."""

    budget: float | None = None
    on_busy: SourceBusyListener | None = None
    shared: Allowance | None = None


class CodeHost(Protocol):
    """GitHub's REST API for one token; ``repository`` is ``owner/name``. Every call raises
    ``SourceUnavailable`` or ``SourceRejected`` rather than return half an answer."""

    async def check_runs(
        self, repository: str, ref: str, call: SourceCall | None = None
    ) -> list[CheckResult]:
        """The latest check run of each name on ``ref``."""
        ...

    async def statuses(
        self, repository: str, ref: str, call: SourceCall | None = None
    ) -> list[CheckResult]:
        """The latest commit status of each context on ``ref`` (the combined status)."""
        ...

    async def pulls_for_commit(
        self, repository: str, sha: str, call: SourceCall | None = None
    ) -> list[PullRequest]: ...

    async def reviews(
        self, repository: str, number: int, call: SourceCall | None = None
    ) -> list[Review]:
        """Every review of the pull request, oldest first."""
        ...

    async def compare(
        self, repository: str, base: str, head: str, call: SourceCall | None = None
    ) -> Comparison: ...

    async def file(
        self, repository: str, path: str, ref: str, call: SourceCall | None = None
    ) -> RepoFile | None:
        """The file at ``path`` on ``ref``; None when there is none."""
        ...

    async def folder(
        self, repository: str, path: str, ref: str, call: SourceCall | None = None
    ) -> list[RepoEntry] | None:
        """The entries of the folder at ``path`` on ``ref``; None when there is none."""
        ...
